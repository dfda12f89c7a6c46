"""``controlbreast <stage>``: one command per DVC stage, each a thin call into ``stages/``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Literal

import typer

from controlbreast.config import ConfigError

app = typer.Typer(help="Synthetic breast images with ControlNet, and an honest measure of their use.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
Params = Annotated[Path, typer.Option("--params", "-p", help="The params file to read.")]


def _run(stage: Callable[[], None]) -> None:
    """Run a stage; known failures print one clear message (no traceback) and exit non-zero."""
    from controlbreast.controls.build import ControlsError
    from controlbreast.data.ingest import IngestError
    from controlbreast.quality.gate import DataQualityError

    try:
        stage()
    except ConfigError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(2) from None
    except (IngestError, ControlsError, DataQualityError, FileNotFoundError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(1) from None


@app.command()
def ingest(params: Params = Path("params.yaml")) -> None:
    """Read the configured source (phantom, busi or csv) into data/prepared with leak-free splits."""
    from controlbreast.stages import ingest as stage

    _run(lambda: stage.main(params))


@app.command()
def controls(params: Params = Path("params.yaml")) -> None:
    """Make the ControlNet's control images (Canny edges, lesion masks or both)."""
    from controlbreast.stages import controls as stage

    _run(lambda: stage.main(params))


@app.command()
def validate(params: Params = Path("params.yaml"),
             target: Annotated[Literal["prepared", "synthetic"],
                               typer.Option(help="Which data set to check.")] = "prepared") -> None:
    """Data-quality gate (great-expectations): fail before training if the data is quietly wrong."""
    from controlbreast.stages import validate as stage

    _run(lambda: stage.main(params, target))
