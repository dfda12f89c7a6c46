"""Control images for the ControlNet: Canny edge maps and lesion masks."""
