"""The MLflow Model Registry: each training stage registers its best model as ``candidate``; it
becomes ``champion`` only by ``controlbreast promote --yes`` (a decision, not a stage output: a
rerun of ``dvc repro`` never moves the champion), and only when it beats the current champion on
the validation split.

Validation AUCs are comparable only on the same validation images, so each version carries the
AUC and a digest of the validation ids as tags. A champion measured on other images (another data
set, other splits) cannot be compared and is replaced; the reason is returned and logged.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

from controlbreast.errors import ModelError

REGISTERED_NAME = "controlbreast-classifier"
CANDIDATE, CHAMPION = "candidate", "champion"
RULE = ("Each training stage registers its best seed on the validation split (macro one-vs-rest AUC) as "
        f"'{CANDIDATE}'. `controlbreast promote --yes` moves '{CHAMPION}' to it when its validation AUC "
        "beats the champion's on the same validation images (or the champion was validated on other "
        "images, or there is none) and its 95% interval lies above chance (0.5). The test split and "
        "the external sets never choose a model: they measure it.")


@dataclass(frozen=True)
class Promotion:
    """What happened to the champion alias after registering ``version``."""

    version: str
    promoted: bool
    reason: str
    previous_champion: str | None = None


def ids_digest(ids: Sequence[str]) -> str:
    """A short digest of a set of image ids (order-free)."""
    return hashlib.sha256("\n".join(sorted(ids)).encode()).hexdigest()[:16]


def register_candidate(model_uri: str, val_auc: float, val_ids: Sequence[str],
                       tags: dict[str, str],
                       val_auc_interval: tuple[float | None, float | None] | None = None) -> str:
    """Register ``model_uri`` as a new version with alias ``candidate``; returns the version.

    ``val_auc_interval`` (low, high) is stored too: ``verdict`` never promotes a model whose
    interval reaches chance."""
    import mlflow
    from mlflow import MlflowClient

    interval = {}
    if val_auc_interval and None not in val_auc_interval:
        interval = {"val_auc_low": f"{val_auc_interval[0]:.6f}", "val_auc_high": f"{val_auc_interval[1]:.6f}"}
    version = mlflow.register_model(model_uri, REGISTERED_NAME, tags={
        **tags, **interval, "val_auc": f"{val_auc:.6f}", "val_ids": ids_digest(val_ids)}).version
    client = MlflowClient()
    client.update_registered_model(REGISTERED_NAME, description=RULE)
    bounds = f" [{interval['val_auc_low']}, {interval['val_auc_high']}]" if interval else ""
    origin = ", ".join(f"{key} {value}" for key, value in tags.items())
    client.update_model_version(REGISTERED_NAME, version, description=(
        f"{CANDIDATE}: validation macro AUC {val_auc:.4f}{bounds} on {len(val_ids)} validation images "
        f"({origin})"))
    client.set_registered_model_alias(REGISTERED_NAME, CANDIDATE, version)
    return str(version)


def _champion():
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    except MlflowException:
        return None


def verdict(version: str) -> Promotion:
    """Whether ``version`` should become ``champion``: a better validation AUC on the same validation
    images, or no comparable champion. Reads the registry, changes nothing."""
    from mlflow import MlflowClient

    candidate = MlflowClient().get_model_version(REGISTERED_NAME, version)
    champion = _champion()
    auc = float(candidate.tags["val_auc"])
    low = float(candidate.tags.get("val_auc_low", "nan"))
    if not low > 0.5:
        promoted = False
        reason = (f"validation AUC {auc:.4f}, 95% interval from {low:.4f}: it reaches chance (0.5), "
                  "no evidence of skill")
    elif champion is None:
        promoted, reason = True, "no champion yet"
    elif str(champion.version) == str(version):
        promoted, reason = False, "it is the champion already"
    elif champion.tags.get("val_ids") != candidate.tags["val_ids"]:
        promoted, reason = True, "champion was validated on other images (not comparable)"
    else:
        best = float(champion.tags["val_auc"])
        promoted = auc > best
        reason = f"validation AUC {auc:.4f} {'>' if promoted else '<='} champion's {best:.4f}"
    return Promotion(str(version), promoted, reason, str(champion.version) if champion else None)


def promote_if_better(version: str) -> Promotion:
    """Apply ``verdict``: move ``champion`` to ``version`` when it wins; the verdict and its reason
    are written to the version's ``promotion`` tag and appended to its description either way."""
    from mlflow import MlflowClient

    decision = verdict(version)
    client = MlflowClient()
    if decision.promoted:
        client.set_registered_model_alias(REGISTERED_NAME, CHAMPION, version)
    said = f"{'promoted to ' + CHAMPION if decision.promoted else 'not promoted'}: {decision.reason}"
    client.set_model_version_tag(REGISTERED_NAME, version, "promotion", said)
    description = client.get_model_version(REGISTERED_NAME, version).description or ""
    client.update_model_version(REGISTERED_NAME, version, description=f"{description}\n{said}".strip())
    return decision


def candidate_version() -> str:
    """The version the ``candidate`` alias points at; a ``ModelError`` when there is none."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    try:
        return str(MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CANDIDATE).version)
    except MlflowException:
        raise ModelError(f"no {REGISTERED_NAME!r} version has the alias {CANDIDATE!r} "
                         "(run train-classifier with classifier.registry: true)") from None


FOLDER_INSTEAD = ("give a classifier folder instead (safetensors weights and a JSON card: nothing of it "
                  "is executed)")


def refuse_foreign_model(source: str) -> None:
    """Refuse an MLflow model URI or folder that is not this project's: loading one
    (``mlflow.pyfunc.load_model``) imports its code and unpickles what it saved, so only the
    project's registered classifier (``models:/controlbreast-classifier/VERSION`` or ``@ALIAS``)
    and ``runs:/RUN/PATH`` (checked by ``check_project_run`` once the store is open) pass."""
    if not source.startswith((f"models:/{REGISTERED_NAME}/", f"models:/{REGISTERED_NAME}@", "runs:/")):
        raise ModelError(f"{source}: not this project's model. Loading an MLflow model runs its code and "
                         "unpickles its objects, so predict loads only the project's registered classifier "
                         f"(an alias, models:/{REGISTERED_NAME}/VERSION or @ALIAS) and runs:/RUN/model of "
                         f"the project's store; {FOLDER_INSTEAD}")


def check_project_run(source: str) -> None:
    """A ``runs:/RUN/PATH`` source must name a run of the active tracking store (the project's,
    opened by the caller); other sources pass."""
    import mlflow
    from mlflow.exceptions import MlflowException

    if not source.startswith("runs:/"):
        return
    run = source.removeprefix("runs:/").split("/", 1)[0]
    try:
        mlflow.MlflowClient().get_run(run)
    except MlflowException:
        raise ModelError(f"{source}: run {run!r} is not in this project's MLflow store "
                         f"({mlflow.get_tracking_uri()}); loading a model runs its code and unpickles "
                         f"its objects, so predict loads runs of that store only; {FOLDER_INSTEAD}") from None
