"""``controlbreast <stage>``: one command per DVC stage, each a thin call into ``stages/``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal

import typer

from controlbreast.errors import ControlBreastError

app = typer.Typer(help="Synthetic breast images with ControlNet, and an honest measure of their use.",
                  no_args_is_help=True, add_completion=False, pretty_exceptions_enable=False)
Params = Annotated[Path, typer.Option("--params", "-p", help="The params file to read.")]
Resume = Annotated[bool, typer.Option("--resume", help="Continue from the latest checkpoint of the same "
                                      "configuration, if there is one.")]


def _run(stage: Callable[[], None]) -> None:
    """Run a stage; an expected failure prints one line and exits non-zero, a bug keeps its traceback."""
    try:
        stage()
    except ControlBreastError as error:
        print(f"error: {error}", file=sys.stderr)
        raise typer.Exit(error.exit_code) from None


@app.command()
def check(params: Params = Path("params.yaml")) -> None:
    """Params x data in seconds, before any training: every problem one line, with a value that works."""
    from controlbreast.stages import check as stage

    _run(lambda: stage.main(params))


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


@app.command("train-base")
def train_base(params: Params = Path("params.yaml"), resume: Resume = False) -> None:
    """Train the class-conditional diffusion model (pixel: from scratch; latent: LoRA on a local one)."""
    from controlbreast.stages import train_base as stage

    _run(lambda: stage.main(params, resume))


@app.command("train-controlnet")
def train_controlnet(params: Params = Path("params.yaml"), resume: Resume = False) -> None:
    """Train a ControlNet on the frozen base so that edge maps or masks steer it."""
    from controlbreast.stages import train_controlnet as stage

    _run(lambda: stage.main(params, resume))


@app.command()
def generate(params: Params = Path("params.yaml"),
             shard: Annotated[str | None, typer.Option(
                 help="Draw only shard i of n (i/n, e.g. 0/4) into staging; the run that completes the "
                      "last shard swaps the set in. Without it: every chunk not yet drawn.")] = None) -> None:
    """Generate labelled synthetic images, each from a varied training-split control (resumable)."""
    from controlbreast.stages import generate as stage

    _run(lambda: stage.main(params, shard))


@app.command("generate-guided")
def generate_guided(params: Params = Path("params.yaml"),
                    shard: Annotated[str | None, typer.Option(
                        help="Draw only shard i of n (i/n), as generate does.")] = None) -> None:
    """Generate the real-guided set: generate's rows, each started from its source real image
    (generate.guided_strength), for the recipes with synthetic: guided."""
    from controlbreast.stages import generate as stage

    _run(lambda: stage.main(params, shard, guided=True))


@app.command("train-fraction-generators")
def train_fraction_generators(params: Params = Path("params.yaml")) -> None:
    """With classifier.fraction_generator: subset, a generator and a synthetic set per real fraction,
    from that fraction's images alone (a clean low-data arm)."""
    from controlbreast.stages import train_fraction_generators as stage

    _run(lambda: stage.main(params))


@app.command("train-segmenter")
def train_segmenter(params: Params = Path("params.yaml")) -> None:
    """Train the lesion segmenter on the real training masks (the judge of lesion placement)."""
    from controlbreast.stages import train_segmenter as stage

    _run(lambda: stage.main(params))


@app.command("evaluate-synthetic")
def evaluate_synthetic(params: Params = Path("params.yaml")) -> None:
    """Realism, control fidelity, class fidelity and memorisation of the synthetic set."""
    from controlbreast.stages import evaluate_synthetic as stage

    _run(lambda: stage.main(params))


class Arm(StrEnum):
    """The training arms (see ``classify/data.py``)."""

    real = "real"
    real_noaug = "real-noaug"
    real_synthetic = "real+synthetic"
    synthetic = "synthetic"


@app.command("train-classifier")
def train_classifier(params: Params = Path("params.yaml"),
                     arm: Annotated[list[Arm] | None, typer.Option(
                         help="Arm to train (repeat for several): real, real-noaug, real+synthetic, "
                              "synthetic.")] = None,
                     ) -> None:
    """Train timm classifiers per arm and seed, choose on validation, register the best as candidate."""
    from controlbreast.stages import train_classifier as stage

    _run(lambda: stage.main(params, list(dict.fromkeys(a.value for a in arm or [Arm.real]))))


@app.command("ingest-external")
def ingest_external(params: Params = Path("params.yaml")) -> None:
    """External test sets (evaluate.external): ingested test-only, gated, near-duplicates listed."""
    from controlbreast.stages import ingest_external as stage

    _run(lambda: stage.main(params))


@app.command("train-fractions")
def train_fractions(params: Params = Path("params.yaml")) -> None:
    """Data efficiency: real and real+synthetic on nested subsets (classifier.real_fractions below 1)."""
    from controlbreast.stages import train_fractions as stage

    _run(lambda: stage.main(params))


@app.command("train-recipes")
def train_recipes(params: Params = Path("params.yaml")) -> None:
    """The classifier.recipes arms (same-count control, filtered, pretrain-then-real) at every fraction."""
    from controlbreast.stages import train_recipes as stage

    _run(lambda: stage.main(params))


@app.command("train-filter")
def train_filter(params: Params = Path("params.yaml")) -> None:
    """The label-consistency filter's classifier, on the real training split alone (fixed epochs)."""
    from controlbreast.stages import train_filter as stage

    _run(lambda: stage.main(params))


@app.command("filter-synthetic")
def filter_synthetic(params: Params = Path("params.yaml")) -> None:
    """Each synthetic image's verdict: its intended class's probability under the filter, copies dropped."""
    from controlbreast.stages import filter_synthetic as stage

    _run(lambda: stage.main(params))


@app.command()
def evaluate(params: Params = Path("params.yaml")) -> None:
    """Test-split metrics of every trained arm with bootstrap intervals, and paired differences."""
    from controlbreast.stages import evaluate as stage

    _run(lambda: stage.main(params))


@app.command()
def report(params: Params = Path("params.yaml")) -> None:
    """One page (reports/index.html) and its Markdown twin: data, synthetic images, arms, tuning, runs."""
    from controlbreast.stages import report as stage

    _run(lambda: stage.main(params))


@app.command()
def promote(params: Params = Path("params.yaml"),
            version: Annotated[str | None, typer.Option(
                help="Registry version (default: the candidate).")] = None,
            yes: Annotated[bool, typer.Option(
                "--yes", help="Apply; without it, only report.")] = False) -> None:
    """Compare the candidate classifier with the champion on validation; move `champion` with --yes."""
    from controlbreast.stages import promote as stage

    _run(lambda: stage.main(params, version, yes))


checkpoints_app = typer.Typer(help="List or prune training checkpoints (never removed automatically).",
                              no_args_is_help=True)
app.add_typer(checkpoints_app, name="checkpoints")


@checkpoints_app.command("list")
def checkpoints_list(params: Params = Path("params.yaml")) -> None:
    """Every configuration's checkpoints with its fingerprint, steps, size and folder."""
    from controlbreast.stages import checkpoints as stage

    _run(lambda: stage.list_runs(params))


@checkpoints_app.command("prune")
def checkpoints_prune(
        params: Params = Path("params.yaml"),
        fingerprint: Annotated[list[str] | None, typer.Option(
            help="Remove this configuration's checkpoints (repeat for several); default: every "
                 "configuration but each stage's newest.")] = None,
        keep_latest: Annotated[bool, typer.Option(help="Keep each stage's newest configuration.")] = True,
        yes: Annotated[bool, typer.Option("--yes", help="Remove; without it, only list.")] = False) -> None:
    """Remove checkpoints of configurations you no longer need (a dry run unless --yes)."""
    from controlbreast.stages import checkpoints as stage

    _run(lambda: stage.prune(params, tuple(fingerprint or ()), keep_latest, yes))


@app.command()
def predict(images: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
            model: Annotated[str, typer.Option(
                help="A registry alias (champion, candidate), a model folder or an MLflow model URI.")
            ] = "champion",
            params: Params = Path("params.yaml"),
            strict: Annotated[bool, typer.Option(
                "--strict", help="Exit non-zero when a file cannot be read (its row is printed anyway).")
            ] = False) -> None:
    """Print per-class probabilities of images (CSV, one row per file, an error column for files
    that cannot be read), with the preprocessing of training; folders skip *_mask* files."""
    from controlbreast.stages import predict as stage

    _run(lambda: stage.main(params, images, model, strict))


@app.command()
def tune(params: Params = Path("params.yaml"),
         workers: Annotated[int | None, typer.Option(
             min=1, help="Worker processes on the study (default tune.workers).")] = None,
         storage: Annotated[str | None, typer.Option(
             help="Study storage: a SQLAlchemy URL or grpc://HOST:PORT (default tune.storage).")] = None,
         list_cache: Annotated[bool, typer.Option(
             "--list-cache", help="List the cached synthetic sets of tuning and exit.")] = False,
         prune_cache: Annotated[bool, typer.Option(
             "--prune-cache", help="Delete cached sets that other models drew.")] = False,
         ) -> None:
    """Optuna: guidance scale and synthetic mix ratio on the validation split (N workers, one study)."""
    from controlbreast.stages import tune as stage

    if list_cache or prune_cache:
        _run(lambda: stage.cache(params, prune_cache))
    else:
        _run(lambda: stage.main(params, workers, storage))


@app.command("tune-server")
def tune_server(storage: Annotated[str, typer.Option(help="The RDB storage to serve (SQLAlchemy URL).")],
                host: Annotated[str, typer.Option(help="Address to bind; 127.0.0.1 keeps it local.")
                                ] = "127.0.0.1",
                port: Annotated[int, typer.Option(help="Port to listen on.")] = 13000) -> None:
    """Serve a study storage over gRPC so workers on other machines join with --storage grpc://HOST:PORT."""
    from controlbreast.tuning.server import serve

    _run(lambda: serve(storage, host, port))


@app.command()
def pull(name: Annotated[str, typer.Argument(
            help="An artifact of dvc.yaml (base-diffusion, controlnet, classifier-real, ...) or a data "
                 "set (data, controls, synthetic).")],
         rev: Annotated[str | None, typer.Option(help="Git revision or tag (default: HEAD).")] = None,
         out: Annotated[Path | None, typer.Option("--out", "-o", help="Folder to create "
                                                  "(default: ./NAME).")] = None,
         repo: Annotated[str, typer.Option(help="The project: a local path or a git URL.")] = ".") -> None:
    """Download the version of an artifact or data set that a git revision points at (`dvc get`)."""
    from controlbreast.versions import pull as fetch

    _run(lambda: print(f"pull: {name}@{rev or 'HEAD'} -> {fetch(name, rev, out or Path(name), repo)}"))


@app.command()
def overlay(files: Annotated[list[Path] | None, typer.Argument(
                help="YAML overlays merged in order, e.g. ci/params-tiny.yaml.")] = None,
            params: Params = Path("params.yaml"),
            set_: Annotated[list[str] | None, typer.Option(
                "--set", "-S", help="KEY=VALUE with a dotted key (repeat), applied after the files.")
            ] = None) -> None:
    """Merge params overlays and KEY=VALUE overrides into the params file (validated first, and
    data.classes against the source's labels)."""
    from controlbreast.data.discovery import check_source_classes
    from controlbreast.overlay import apply_overlay

    _run(lambda: apply_overlay(params, files or [], set_ or [], check_source_classes))


@app.command("dvc-deps")
def dvc_deps(dvc_yaml: Annotated[Path, typer.Option("--dvc-yaml", help="The DVC pipeline file.")
                                 ] = Path("dvc.yaml"),
             check: Annotated[bool, typer.Option(
                 "--check", help="Write nothing; fail when a stage's src/ deps are out of date.")] = False
             ) -> None:
    """Rewrite each dvc.yaml stage's src/ deps from the import closure of its command."""
    from controlbreast import depgraph

    def sync() -> None:
        if check:
            depgraph.require_current(dvc_yaml)
            print(f"dvc-deps: every stage of {dvc_yaml} depends on exactly the code it runs")
        else:
            changed = depgraph.write_deps(dvc_yaml)
            print(f"dvc-deps: rewrote the src/ deps of {', '.join(changed)}" if changed
                  else f"dvc-deps: {dvc_yaml} is up to date")

    _run(sync)


@app.command("tracking-server")
def tracking_server(
        backend: Annotated[str | None, typer.Option(help="SQL store URI: sqlite:///PATH or "
                                                    "postgresql://USER@HOST/DB (password in PGPASSWORD); "
                                                    "default: the project's mlruns/mlflow.db.")] = None,
        artifacts: Annotated[str | None, typer.Option(help="Artifact root the server serves: a folder "
                                                      "URI or s3://... (default: mlruns/artifacts).")] = None,
        host: Annotated[str, typer.Option(help="Interface to bind; the server has no auth, so "
                                          "127.0.0.1 unless a proxy guards it.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(help="Port to listen on.")] = 5000,
        workers: Annotated[int, typer.Option(help="Server worker processes.")] = 1,
        params: Params = Path("params.yaml")) -> None:
    """Run the team's shared MLflow server; stages log to it with MLFLOW_TRACKING_URI=http://HOST:PORT."""
    from controlbreast.server import serve

    _run(lambda: serve(params, backend, artifacts, host, port, workers))


@app.command()
def ui(port: Annotated[int, typer.Option(help="Port to listen on (127.0.0.1 only).")] = 5000,
       params: Params = Path("params.yaml")) -> None:
    """Start the MLflow UI on 127.0.0.1 on the project's store; print the URL of the training runs
    with the headline columns (each arm's test AUC, the paired differences)."""
    from controlbreast.server import ui as serve_ui

    _run(lambda: serve_ui(params, port=port))


@app.command("stage-list")
def stage_list() -> None:
    """Rewrite the stage list in README.md and docs/pipeline/index.md from dvc.yaml."""
    from controlbreast.stage_list import PAGES, write_pages

    def run() -> None:
        changed = write_pages(Path.cwd())
        print(f"stage list rewritten in {', '.join(changed)}" if changed else
              f"stage list up to date in {', '.join(PAGES)}")

    _run(run)


@app.command("readme-results")
def readme_results(
        files: Annotated[list[str] | None, typer.Option(
            "--file", help="A file with the results markers, relative to the repository root (repeat); "
                           "default: README.md and docs/index.md.")] = None,
        metrics: Annotated[str, typer.Option(help="The committed headline metrics it is rendered from.")
                           ] = "metrics/summary.json") -> None:
    """Rewrite the README's results-at-a-glance table from the committed metrics/summary.json."""
    from controlbreast.readme import FILES, update_results

    def run() -> None:
        changed = update_results(Path.cwd(), tuple(files or FILES), metrics)
        print(f"results table rewritten in {', '.join(changed)}" if changed else "results tables up to date")

    _run(run)
