"""A tiny prepared phantom set, a synthetic set made from it, and tiny classifiers trained on both
through the real stage (MLflow store, registry and all), for tests/classify and tests/evaluation."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from builders import make_config
from controlbreast.classify.config import RecipeConfig
from controlbreast.config import Config, load_config
from controlbreast.data.imageio import encode_png, load_png
from controlbreast.data.ingest import ingest
from controlbreast.data.manifest import SyntheticRow, manifest_bytes
from controlbreast.outputs import read_csv

# resnet10t with 8/16 channels: a few thousand weights, a batch in milliseconds at 32 px
TINY_CLASSIFIER = {"model_kwargs": {"channels": [8, 8, 16, 16], "stem_width": 8}, "seeds": [0, 1],
                   "epochs": 3, "patience": 2, "batch_size": 16, "threads": 1}
TINY_EVALUATE = {"bootstrap": 200}


def prepare_phantom(root: Path, **sections: dict) -> Config:
    """Ingest 14 one-image phantom patients per class at 32 px (about 30 train, 2 val and 2 test
    images per class); ``sections`` override params sections."""
    paths = {"synthetic": str(root / "synthetic"), "classifiers": str(root / "classifiers"),
             "reports": str(root / "reports")}
    config = make_config(root, data={"image_size": 32}, paths=paths,
                         phantom={"patients_per_class": 14, "max_images_per_patient": 1, "render_size": 64},
                         classifier=TINY_CLASSIFIER, evaluate=TINY_EVALUATE, **sections)
    ingest(config)
    return config


def write_csv_external(root: Path, classes: tuple[str, ...]) -> dict[str, str]:
    """A real-looking external set holding only ``classes``: a second phantom (other patients and
    seed) ingested once for its files, then listed in a CSV manifest (``path,label,mask_path``) as
    a user writes one for BUS-BRA. Returns its ``root`` and ``manifest`` settings."""
    other = make_config(root, data={"image_size": 64},
                        phantom={"patients_per_class": 5, "max_images_per_patient": 1, "render_size": 64,
                                 "seed": 9})
    rows = [row for row in ingest(other)[0] if row["label"] in classes]
    lines = ["path,label,mask_path", *(f"images/{row['id']}.png,{row['label']},"
                                       f"{'masks/' + row['id'] + '.png' if row['has_mask'] else ''}"
                                       for row in rows)]
    (root / "external.csv").write_text("\n".join(lines) + "\n")
    return {"root": str(other.paths.prepared), "manifest": str(root / "external.csv")}


def split_ids(config: Config, split: str) -> list[str]:
    rows = read_csv(Path(config.paths.prepared) / "manifest.csv")
    return [row["id"] for row in rows if row["split"] == split]


def write_synthetic(config: Config, control_ids: list[str]) -> Path:
    """A synthetic set in the generate stage's layout: a flipped copy of each control's image,
    ``images/<id>.png`` and ``manifest.csv`` (a ``SyntheticRow`` table)."""
    prepared = Path(config.paths.prepared)
    rows = {row["id"]: row for row in read_csv(prepared / "manifest.csv")}
    folder = Path(config.paths.synthetic)
    (folder / "images").mkdir(parents=True, exist_ok=True)
    table = []
    for n, control in enumerate(control_ids):
        image = np.ascontiguousarray(np.fliplr(load_png(prepared / "images" / f"{control}.png")))
        (folder / "images" / f"syn-{n:04d}.png").write_bytes(encode_png(image))
        table.append({"id": f"syn-{n:04d}", "label": rows[control]["label"], "control_id": control,
                      "control_split": rows[control]["split"], "seed": n, "variation": "{}",
                      "guidance_scale": 1.0, "controlnet_scale": 1.0, "steps": 1, "scheduler": "ddim",
                      "model_hash": "flipped-copies"})
    (folder / "manifest.csv").write_bytes(manifest_bytes(table, SyntheticRow))
    return folder


def write_params(config: Config, path: Path) -> Path:
    """``config`` as a params file that ``load_config`` reads back to the same config."""
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert load_config(path) == config
    return path


@dataclass(frozen=True)
class Trained:
    """Both training stages run: ``real`` with seeds 0 and 1, then ``real-noaug``, ``real+synthetic``
    and ``synthetic`` with seed 0 (as the two DVC stages do), the data-efficiency arms
    (``real@0.5``, ``real+synthetic@0.5``) and the recipe ``real-repeat`` at both fractions with seed
    0, all in one MLflow store."""

    config: Config
    params: Path


def train_all(root: Path) -> Trained:
    from controlbreast.stages import train_classifier, train_fractions, train_recipes

    config = prepare_phantom(root)
    repeat = {"real-repeat": RecipeConfig(real="repeat", synthetic="none")}
    classifier = config.classifier.model_copy(update={"recipes": repeat})
    config = config.model_copy(update={"classifier": classifier})
    write_synthetic(config, split_ids(config, "train"))
    params = write_params(config, root / "params.yaml")
    train_classifier.main(params, ["real"])
    later = config.model_copy(update={"classifier": config.classifier.model_copy(update={"seeds": (0,)})})
    train_classifier.main(write_params(later, root / "params-synthetic.yaml"),
                          ["real-noaug", "real+synthetic", "synthetic"])
    train_fractions.main(root / "params-synthetic.yaml")
    train_recipes.main(root / "params-synthetic.yaml")
    return Trained(config, params)
