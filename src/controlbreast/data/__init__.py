"""Data sources (phantom, BUSI, CSV/DICOM), image I/O, grouping and splits, and ingest."""
