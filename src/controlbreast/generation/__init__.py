"""Synthetic sets from the trained diffusion model: control variation and generation."""
