"""Errors of the diffusion stages, importable without loading torch (the CLI catches them)."""


class TrainingDivergedError(RuntimeError):
    """The loss stopped being finite or exploded; the last good checkpoint is kept."""
