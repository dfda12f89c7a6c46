"""The project's expected failures: one base type the CLI turns into one line and an exit code.

Anything else that escapes a stage is a bug and keeps its traceback. This module is a leaf (it
imports nothing of the project), so every layer can raise these without import cycles.
"""

from __future__ import annotations


class ControlBreastError(Exception):
    """An expected failure; the message says what is wrong, where (file, row, key) and what to do."""

    exit_code = 1


class ConfigError(ControlBreastError):
    """A params file that cannot be used; the message names the file and the key."""

    exit_code = 2


class MissingInputError(ControlBreastError):
    """A stage's input is absent; the message names it and the stage that writes it."""


class DataError(ControlBreastError):
    """Input data that cannot be used as it is (a whole set, a manifest, a table)."""


class IngestError(DataError):
    """Ingest found bad inputs (listed) or nothing usable."""


class ManifestError(DataError):
    """A manifest that breaks its schema; the message names the file, the row and the column."""


class ControlsError(DataError):
    """The prepared set cannot give the configured controls (e.g. masks it does not have)."""


class DataQualityError(DataError):
    """At least one expectation failed; the message says which, on which ids, and what relaxes it."""


class SampleError(DataError):
    """One input that cannot be used; the message names the file and the problem."""

    def __init__(self, source_path: str, problem: str) -> None:
        super().__init__(source_path, problem)  # both in args, so it pickles across processes
        self.source_path = source_path
        self.problem = problem

    def __str__(self) -> str:
        return f"{self.source_path}: {self.problem}"


class ModelError(ControlBreastError):
    """A model folder, weights file or registry entry that cannot be used; the message names it."""


class TrainingDivergedError(ControlBreastError):
    """The loss stopped being finite or exploded; the last good checkpoint is kept."""


class CheckpointError(ControlBreastError):
    """A checkpoint that cannot be resumed or managed as asked."""


class PullError(ControlBreastError):
    """A version of an artifact that cannot be fetched (unknown name or revision, missing remote data)."""


class PeerLostError(ControlBreastError):
    """Another process of a multi-process launch died; this one stops too, writing nothing."""
