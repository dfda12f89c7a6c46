"""controlbreast: ControlNet-made synthetic breast images and an honest measure of their use."""

__version__ = "0.1.0"
