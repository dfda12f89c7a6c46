"""Class probabilities for images, from a model folder or an MLflow model, with training's
preprocessing; and the MLflow pyfunc wrapper that ``mlflow models serve`` runs.

The MLflow model's artifact is the classifier folder itself (``model.safetensors`` and
``classifier.json``) and its code is ``serving.py`` (a model from code): nothing is pickled, and
serving, ``controlbreast predict`` and ``controlbreast evaluate`` all go through ``Predictor``, so
they give the same numbers.
Its input is a table with one ``image`` column of encoded image bytes (PNG, JPEG, TIFF or DICOM,
any size; base64 in JSON requests); its output has one probability column per class.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import mlflow.pyfunc
import numpy as np
import pandas as pd
from torch import nn

from controlbreast.classify.models import CARD, ModelCard, load_classifier, probabilities
from controlbreast.classify.transforms import decode_image, fit_images, normalise, scale
from controlbreast.data.config import MammographyConfig
from controlbreast.data.imageio import encode_png, read_bytes
from controlbreast.data.mammo import orient
from controlbreast.errors import ControlBreastError, DataError, ModelError, SampleError

MASK_NAME = re.compile(r"_mask(_\d+)?$", re.IGNORECASE)  # BUSI: "x_mask.png", "x_mask_1.png"
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
REQUIREMENTS = ("torch", "timm", "safetensors", "numpy", "pandas", "opencv-python-headless",
                "pillow", "pydicom", "pydantic", "pyyaml", "scikit-learn", "tqdm")


class Predictor:
    """A loaded classifier and its card; every input goes through the card's preprocessing."""

    def __init__(self, model: nn.Module, card: ModelCard):
        self.model, self.card = model.eval(), card

    @classmethod
    def from_folder(cls, folder: Path) -> Predictor:
        return cls(*load_classifier(folder))

    def predict_pixels(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """(N, C) probabilities of (H, W) uint8 images of any size."""
        batch = normalise(scale(fit_images(list(images), self.card)), self.card)
        return probabilities(self.model, batch)

    def prepare(self, image: np.ndarray, name: str) -> np.ndarray:
        """A source image (H, W) uint8 as ingest would have given the model its training images:
        a mammogram cropped to the breast and mirrored chest wall left; a patch model refuses a
        whole film (``SampleError``), since it learnt from patches cut around lesions. An image
        already at the model's size is ingest's output (``data/prepared``) and passes unchanged."""
        card, side = self.card, self.card.image_size
        if image.shape == (side, side):
            return image
        if card.patches:
            raise SampleError(name, f"{image.shape[1]}x{image.shape[0]} px, but this classifier learnt from "
                                    f"{side}x{side} patches cut from mammograms (data.patches): give it "
                                    "patches, e.g. those `controlbreast ingest` writes, not whole films")
        if card.modality == "mammography":
            return orient(image, None, 8, MammographyConfig(**card.mammography))[0]
        return image

    def predict_decoded(self, images: Sequence[np.ndarray], names: Sequence[str]) -> np.ndarray:
        """(N, C) probabilities of decoded (H, W) uint8 source images, each prepared by ``prepare``."""
        return self.predict_pixels([self.prepare(image, name)
                                    for image, name in zip(images, names, strict=True)])

    def predict_encoded(self, data: Sequence[bytes], names: Sequence[str]) -> np.ndarray:
        """(N, C) probabilities of encoded source images (prepared by ``prepare``); a bad one raises
        ``SampleError`` naming it."""
        images = [decode_image(blob, name) for blob, name in zip(data, names, strict=True)]
        return self.predict_decoded(images, names)

    def predict_files(self, paths: Sequence[Path]) -> np.ndarray:
        return self.predict_encoded([read_bytes(Path(p), str(p)) for p in paths], [str(p) for p in paths])

    def score_files(self, paths: Sequence[Path]) -> tuple[np.ndarray, list[str]]:
        """(N, C) probabilities, NaN for a file that cannot be read, and each file's problem ("" if
        none): one bad file in a folder should not cost the others their scores."""
        images, problems = [], []
        for path in map(Path, paths):
            try:
                images.append(self.prepare(decode_image(read_bytes(path, str(path)), str(path)), str(path)))
                problems.append("")
            except SampleError as error:
                images.append(None)
                problems.append(error.problem)
        scores = np.full((len(images), len(self.card.classes)), np.nan)
        good = [i for i, image in enumerate(images) if image is not None]
        if good:
            scores[good] = self.predict_pixels([images[i] for i in good])
        return scores, problems


class ClassifierModel(mlflow.pyfunc.PythonModel):
    """MLflow pyfunc: table of encoded images in, table of class probabilities out."""

    def load_context(self, context) -> None:
        self.predictor = Predictor.from_folder(Path(context.artifacts["classifier"]))

    def predict(self, context, model_input: pd.DataFrame, params=None) -> pd.DataFrame:
        """Probabilities per row. Errors leave as ``MlflowException``: the scoring server returns
        any other exception with its full stack trace (source paths and all) in the response."""
        from mlflow.exceptions import MlflowException
        from mlflow.protos.databricks_pb2 import INTERNAL_ERROR, INVALID_PARAMETER_VALUE

        images = [bytes(value) for value in model_input["image"]]
        names = [f"row {i}" for i in range(len(images))]
        try:
            scores = self.predictor.predict_encoded(images, names)
        except ControlBreastError as error:  # a bad input: the client's to fix, one line
            raise MlflowException(str(error), error_code=INVALID_PARAMETER_VALUE) from None
        except Exception as error:  # a bug: the trace goes to the server's log, not to the client
            logging.getLogger(__name__).exception("scoring failed")
            raise MlflowException(f"internal error while scoring ({type(error).__name__}); see the "
                                  "server log", error_code=INTERNAL_ERROR) from None
        return pd.DataFrame(scores, columns=list(self.predictor.card.classes))


def _pinned(packages: Sequence[str]) -> list[str]:
    pins = []
    for package in packages:
        try:
            pins.append(f"{package}=={version(package)}")
        except PackageNotFoundError:
            pins.append(package)
    return pins


def example_image(size: int) -> np.ndarray:
    """A (size, size) uint8 diagonal gradient: an input example that is no one's image."""
    ramp = np.add.outer(np.arange(size), np.arange(size)) * (255.0 / max(2 * size - 2, 1))
    return ramp.astype(np.uint8)


def log_pyfunc(folder: Path, name: str = "model", registered_model_name: str | None = None):
    """Log the classifier in ``folder`` as an MLflow model of the active run; returns ModelInfo.

    The input example is a gradient image (``example_image``), so no patient image is copied into
    the tracking store. Requirements are pinned to the installed versions (no inference, which
    would import and run the model again); serving needs this package installed
    (``mlflow models serve --env-manager local``).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema

    card = ModelCard.from_json((Path(folder) / CARD).read_text())
    signature = ModelSignature(inputs=Schema([ColSpec("binary", "image")]),
                               outputs=Schema([ColSpec("double", c) for c in card.classes]))
    example = encode_png(example_image(card.image_size))
    return mlflow.pyfunc.log_model(name=name, python_model=str(Path(__file__).with_name("serving.py")),
                                   artifacts={"classifier": str(folder)}, signature=signature,
                                   input_example=pd.DataFrame({"image": [example]}),
                                   pip_requirements=_pinned(REQUIREMENTS),
                                   registered_model_name=registered_model_name)


def is_mask(path: Path) -> bool:
    """A lesion mask by its name (BUSI's ``<image>_mask.png``, ``<image>_mask_1.png``), not a scan."""
    return bool(MASK_NAME.search(Path(path).stem))


def image_files(paths: Sequence[Path]) -> tuple[list[Path], int]:
    """The given files, and the image files (by suffix) inside given folders, sorted; mask files
    found in folders are left out (a file named explicitly is kept). Returns the files and how
    many masks were left out."""
    files: list[Path] = []
    skipped = 0
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
            scans = [p for p in found if not is_mask(p)]
            if not scans:
                raise DataError(f"{path}: no image files ({', '.join(IMAGE_SUFFIXES)})"
                                + (f", only {len(found)} mask files" if found else ""))
            files.extend(scans)
            skipped += len(found) - len(scans)
        else:
            files.append(path)
    return files, skipped


def load_predictor(source: str) -> Predictor:
    """A classifier folder, or an MLflow model (a folder with ``MLmodel``, or a URI such as
    ``models:/name@alias`` or ``runs:/<run>/model``)."""
    if Path(source).is_dir() and not (Path(source) / "MLmodel").is_file():
        return Predictor.from_folder(Path(source))
    if not Path(source).is_dir() and ":/" not in source:
        raise ModelError(f"{source}: neither a classifier folder nor an MLflow model URI")
    from mlflow.exceptions import MlflowException

    try:
        model = mlflow.pyfunc.load_model(source)
    except MlflowException as error:
        raise ModelError(f"{source}: cannot load the model ({error.message})") from None
    return model.unwrap_python_model().predictor
