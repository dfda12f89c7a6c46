"""Realism of a synthetic set: FID, KID and precision/recall with torch-fidelity, in domain features.

ImageNet Inception features say little about ultrasound speckle, so the default features are the
penultimate layer of the project's own real-only classifier, registered with torch-fidelity as
the feature extractor ``controlbreast-classifier`` and used for every metric (precision/recall
included: torch-fidelity's default for it, VGG16, would download weights). Its
``feature_extractor_weights_path`` is the classifier folder::

    torch_fidelity.calculate_metrics(input1=synthetic, input2=real, fid=True, kid=True, prc=True,
                                     feature_extractor=EXTRACTOR, feature_extractor_weights_path=folder,
                                     kid_subset_size=..., cuda=False)

Here features are extracted once per set (``FeatureSpace``) and the metrics computed with
torch-fidelity's own feature-level functions, so per-class figures cost no second pass.
Inception-v3 FID is offered only with a local weights file, which is read as tensors only
(``SafeInceptionV3``): torch-fidelity's own loader unpickles it, so a crafted file would run code.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset
from torch_fidelity import FeatureExtractorBase
from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

from controlbreast.classify.models import load_classifier
from controlbreast.classify.transforms import normalise
from controlbreast.errors import MissingInputError, ModelError

EXTRACTOR = "controlbreast-classifier"
LAYER = "penultimate"
INCEPTION = "controlbreast-inception-v3"


class ClassifierFeatures(FeatureExtractorBase):
    """torch-fidelity extractor: a saved controlbreast classifier's penultimate features and logits.

    Input: (N, 1 or 3, H, W) uint8 (torch-fidelity's convention; 3 channels are averaged), resized
    to the classifier's ``image_size`` if needed, then normalised as in training. Output: a tuple
    with (N, D) float32 per requested feature. ``feature_extractor_weights_path`` is the folder.
    """

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path=None, **kwargs):
        super().__init__(name, features_list)
        if feature_extractor_weights_path is None:
            raise ValueError(f"feature extractor {name!r} needs feature_extractor_weights_path: the folder "
                             "of a trained classifier (models/classifiers/real/seed-<k>)")
        self.model, self.card = load_classifier(Path(feature_extractor_weights_path))

    @staticmethod
    def get_provided_features_list() -> tuple[str, ...]:
        return LAYER, "logits"

    @staticmethod
    def get_default_feature_layer_for_metric(metric: str) -> str:
        return LAYER

    @staticmethod
    def can_be_compiled() -> bool:
        return False

    @staticmethod
    def get_dummy_input_for_compile() -> torch.Tensor:
        return torch.zeros(1, 1, 64, 64, dtype=torch.uint8)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        pixels = x.float().mean(dim=1, keepdim=True) / 255.0
        size = self.card.image_size
        if pixels.shape[-2:] != (size, size):
            pixels = F.interpolate(pixels, size=(size, size), mode="bilinear", antialias=True)
        unpooled = self.model.forward_features(normalise(pixels, self.card))
        out = {LAYER: self.model.forward_head(unpooled, pre_logits=True),
               "logits": self.model.forward_head(unpooled)}
        return tuple(out[name].float() for name in self.features_list)


class ImageTensors(Dataset):
    """(N, H, W) uint8 images as torch-fidelity inputs: (channels, H, W) uint8 tensors."""

    def __init__(self, images: np.ndarray, channels: int = 1):
        self.images, self.channels = images, channels

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(self.images[index]))[None].repeat(self.channels, 1, 1)


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """A state dict of tensors from a safetensors file or a PyTorch file read with
    ``weights_only=True`` (no code runs); anything else is a ``ModelError`` naming the key."""
    key = f"synthetic_eval.inception_weights={path}"
    try:
        if Path(path).suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # pickle, torch and safetensors each raise their own kind
        first = next((line.strip() for line in str(error).splitlines() if line.strip()), type(error).__name__)
        raise ModelError(f"{key}: not a plain weights file, refused without running it ({first})") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelError(f"{key}: expected a state dict of tensors, got {type(state).__name__}")
    return state


class SafeInceptionV3(FeatureExtractorInceptionV3):
    """torch-fidelity's Inception-v3 (FID's conventional features) without its loader's
    ``torch.load(path, weights_only=False)``: the file is read by ``read_weights`` and the parent
    gets those tensors back, serialised here in memory, so it never unpickles the user's file."""

    def __init__(self, name: str, features_list: list[str], feature_extractor_weights_path=None, **kwargs):
        if feature_extractor_weights_path is None:
            raise ValueError("SafeInceptionV3 needs a local weights file (it never downloads)")
        buffer = io.BytesIO()
        torch.save(read_weights(Path(feature_extractor_weights_path)), buffer)
        buffer.seek(0)
        super().__init__(name, features_list, feature_extractor_weights_path=buffer, **kwargs)


def register() -> None:
    """Register ``ClassifierFeatures`` and ``SafeInceptionV3`` with torch-fidelity (once per process)."""
    import torch_fidelity
    from torch_fidelity.registry import FEATURE_EXTRACTORS_REGISTRY

    for name, extractor in ((EXTRACTOR, ClassifierFeatures), (INCEPTION, SafeInceptionV3)):
        if name not in FEATURE_EXTRACTORS_REGISTRY:
            torch_fidelity.register_feature_extractor(name, extractor)


class FeatureSpace:
    """A torch-fidelity feature extractor on the CPU; ``space(images)`` → (N, D) float32 features."""

    def __init__(self, extractor: str, layer: str, weights: Path, channels: int = 1):
        from torch_fidelity.utils import create_feature_extractor

        register()
        self.layer, self.channels = layer, channels
        self.extractor = create_feature_extractor(extractor, [layer], cuda=False, verbose=False,
                                                  feature_extractor_weights_path=str(weights))

    @classmethod
    def classifier(cls, folder: Path) -> FeatureSpace:
        return cls(EXTRACTOR, LAYER, folder)

    @classmethod
    def inception(cls, weights: Path) -> FeatureSpace:
        """Inception-v3 pool features (2048-d) from a local weights file; never a download."""
        if not Path(weights).is_file():
            raise MissingInputError(f"synthetic_eval.inception_weights={weights}: no such file "
                                    "(torch-fidelity's weights-inception-2015-12-05-6726825d.pth)")
        return cls(INCEPTION, "2048", weights, channels=3)

    def __call__(self, images: np.ndarray, batch_size: int = 64) -> torch.Tensor:
        from torch_fidelity.utils import get_featuresdict_from_dataset

        found = get_featuresdict_from_dataset(ImageTensors(images, self.channels), self.extractor,
                                              batch_size, cuda=False, save_cpu_ram=True, verbose=False)
        return found[self.layer]


def frechet_distance(first: torch.Tensor, second: torch.Tensor) -> float:
    """torch-fidelity's FID between two (N, D) feature sets (Gaussian fits; negatives from rounding → 0)."""
    from torch_fidelity.metric_fid import fid_features_to_statistics, fid_statistics_to_metric

    fid = fid_statistics_to_metric(fid_features_to_statistics(first.double()),
                                   fid_features_to_statistics(second.double()), verbose=False)
    return max(0.0, float(fid["frechet_inception_distance"]))


def realism(synthetic: torch.Tensor, real: torch.Tensor, kid_subset_size: int = 100, kid_subsets: int = 100,
            prc_neighborhood: int = 3, seed: int = 0) -> dict[str, float]:
    """FID, KID (mean, std), precision, recall and F-score of synthetic (N, D) against real (M, D).

    KID's subset size is capped at min(N, M); precision/recall need more than ``prc_neighborhood``
    samples on both sides and are left out otherwise. Precision: the fraction of synthetic samples
    inside the real manifold (realism); recall: of real samples inside the synthetic one (coverage).
    """
    from torch_fidelity.metric_kid import kid_features_to_metric
    from torch_fidelity.metric_prc import prc_features_to_metric

    synthetic, real = synthetic.double(), real.double()
    out = {"fid": frechet_distance(synthetic, real), "synthetic": len(synthetic), "real": len(real)}
    subset = min(kid_subset_size, len(synthetic), len(real))
    kid = kid_features_to_metric(synthetic, real, kid_subset_size=subset, kid_subsets=kid_subsets,
                                 rng_seed=seed, verbose=False)
    out |= {"kid_mean": kid["kernel_inception_distance_mean"],
            "kid_std": kid["kernel_inception_distance_std"], "kid_subset_size": subset}
    if min(len(synthetic), len(real)) > prc_neighborhood:
        prc = prc_features_to_metric(synthetic.float(), real.float(), prc_neighborhood=prc_neighborhood,
                                     verbose=False)
        out |= {"precision": prc["precision"], "recall": prc["recall"], "f_score": prc["f_score"]}
    return {key: float(value) for key, value in out.items()}


def realism_by_class(synthetic: torch.Tensor, synthetic_labels: np.ndarray, real: torch.Tensor,
                     real_labels: np.ndarray, classes: tuple[str, ...], **settings) -> dict:
    """``{"overall": realism(...), "per_class": {name: realism(...)}}``."""
    per_class = {name: realism(synthetic[synthetic_labels == c], real[real_labels == c], **settings)
                 for c, name in enumerate(classes)
                 if (synthetic_labels == c).sum() > 1 and (real_labels == c).sum() > 1}
    return {"overall": realism(synthetic, real, **settings), "per_class": per_class}


def _mean(results: list[dict]) -> dict:
    """Key-wise mean of equally shaped nested dicts of numbers."""
    return {key: _mean([r[key] for r in results]) if isinstance(value, dict)
            else float(np.mean([r[key] for r in results])) for key, value in results[0].items()}


def realism_at_sizes(synthetic: torch.Tensor, synthetic_labels: np.ndarray, real: torch.Tensor,
                     real_labels: np.ndarray, classes: tuple[str, ...], sizes: np.ndarray, draws: int = 10,
                     seed: int = 0, **settings) -> dict:
    """``realism_by_class`` of synthetic subsets with ``sizes[c]`` images of class c, averaged over
    ``draws`` random subsets: FID and precision/recall depend on the sample size, so a synthetic set
    is compared with a smaller reference (the validation split) at the reference's size."""
    rng = np.random.default_rng(seed)
    results = []
    for _ in range(draws):
        keep = np.concatenate([rng.choice(np.flatnonzero(synthetic_labels == c), size, replace=False)
                               for c, size in enumerate(sizes) if size])
        results.append(realism_by_class(synthetic[keep], synthetic_labels[keep], real, real_labels, classes,
                                        seed=seed, **settings))
    return _mean(results)
