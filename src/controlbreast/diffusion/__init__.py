"""Diffusion models: the class-conditional UNet, its ControlNet, training, checkpoints and sampling."""
