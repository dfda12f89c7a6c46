"""timm classifiers: build by name, load local pretrained weights, save and load without pickle.

A trained classifier is a folder with ``model.safetensors`` (the weights) and ``classifier.json``
(a ``ModelCard``: which timm model with which arguments, the classes in output order and the
preprocessing). Loading rebuilds the model from the card and reads the tensors, so no code or
pickled object ever comes from the file.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from controlbreast.errors import ConfigError, ModelError

WEIGHTS = "model.safetensors"
CARD = "classifier.json"


@dataclass(frozen=True)
class ModelCard:
    """Everything needed to rebuild a classifier and prepare its inputs.

    Inputs are (H, W) uint8 grayscale fitted to ``image_size`` by ``resize`` (as ingest does), then
    ``(pixels / 255 - mean) / std``. ``val_auc`` is the validation macro AUC of the kept epoch.
    ``modality`` and ``patches`` say what the model learnt from (``classify/data.py: input_view``):
    a whole mammogram is first cropped to the breast and mirrored as ingest does, with the
    ``mammography`` settings (``MammographyConfig``'s fields); a patch model takes patches only.
    """

    model: str
    classes: tuple[str, ...]
    image_size: int
    resize: str
    mean: float
    std: float
    model_kwargs: dict[str, Any] = field(default_factory=dict)
    arm: str = ""
    seed: int = 0
    epoch: int = 0
    val_auc: float = float("nan")
    val_auc_low: float | None = None  # its 95% bootstrap interval over the validation images
    val_auc_high: float | None = None
    modality: str = "ultrasound"  # ultrasound | mammography | mixed (inputs used as given)
    patches: bool = False
    mammography: dict[str, float] = field(default_factory=dict)

    @property
    def at_chance(self) -> bool:
        """Whether the validation AUC's interval reaches 0.5 (or is unknown): no evidence of skill."""
        return self.val_auc_low is None or not self.val_auc_low > 0.5

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelCard:
        raw = json.loads(text)
        raw["classes"] = tuple(raw["classes"])
        return cls(**raw)


def create_classifier(name: str, classes: int, model_kwargs: dict[str, Any] | None = None,
                      pretrained: Path | None = None) -> nn.Module:
    """A timm model with ``in_chans=1`` and ``classes`` outputs, from scratch or a local file.

    ``pretrained`` (safetensors, or a PyTorch state dict read with ``weights_only=True``) goes
    through timm's own loader, which sums a 3-channel stem to one channel and drops a head of
    another size; timm never downloads when a file is given.

    The weights are laid out channels-last: on a CPU a training step of the default resnet10t
    (batch 32, 64 px, one thread) takes 0.058-0.067 s against 0.079-0.089 s in the default layout
    (the one-channel inputs need no change). Saved weights are contiguous (``save_classifier``).
    """
    import timm

    kwargs = dict(model_kwargs or {})
    if pretrained is None:
        model = timm.create_model(name, pretrained=False, num_classes=classes, in_chans=1, **kwargs)
        return model.to(memory_format=torch.channels_last)
    if not Path(pretrained).is_file():
        raise ModelError(f"{pretrained}: no such pretrained weights file")
    try:
        model = timm.create_model(name, pretrained=True, num_classes=classes, in_chans=1,
                                  pretrained_cfg_overlay={"file": str(pretrained)}, **kwargs)
        return model.to(memory_format=torch.channels_last)
    except Exception as error:  # torch, safetensors and pickle each raise their own kind
        lines = [line.strip() for line in str(error).splitlines() if line.strip()][:2]
        raise ModelError(f"{pretrained}: cannot load into {name}: "
                         f"{' '.join(lines) or type(error).__name__}") from None


def _reason(error: Exception) -> str:
    """The first line of an exception's message (timm and torch put the cause there)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


def check_classifier(name: str, classes: int, model_kwargs: dict[str, Any], image_size: int,
                     source: str = "params.yaml") -> None:
    """Build ``name`` and run one (2, 1, image_size, image_size) batch on the meta device.

    A wrong timm name or argument would otherwise surface as a long traceback after the data has
    loaded; on the meta device nothing is allocated or computed, so this costs milliseconds once
    timm is imported (about 2 s, which is why ``load_config`` does not do it). Raises
    ``ConfigError`` naming ``classifier.model`` or ``classifier.model_kwargs``.
    """
    import timm

    with torch.device("meta"):
        try:
            model = timm.create_model(name, pretrained=False, in_chans=1, num_classes=classes,
                                      **model_kwargs)
        except Exception as error:  # timm raises RuntimeError for a name, anything for an argument
            key = "model" if str(error).startswith("Unknown model") else "model_kwargs"
            raise ConfigError(f"{source}: classifier.{key}: timm cannot build {name!r} with "
                              f"{model_kwargs}: {_reason(error)}") from None
        try:
            outputs = model(torch.empty(2, 1, image_size, image_size))
        except NotImplementedError:  # an operation without a meta kernel: nothing to conclude
            return
        except Exception as error:
            raise ConfigError(f"{source}: classifier.model_kwargs: {name!r} with {model_kwargs} fails on a "
                              f"{image_size} px image (data.image_size): {_reason(error)}") from None
    if tuple(outputs.shape) != (2, classes):
        raise ConfigError(f"{source}: classifier.model_kwargs: {name!r} gives outputs of shape "
                          f"{tuple(outputs.shape)}, not (batch, {classes} classes)")


def normalisation(model: nn.Module) -> tuple[float, float]:
    """One-channel mean and std from the model's pretrained config (its channels averaged)."""
    import timm

    config = timm.data.resolve_data_config({}, model=model)
    return float(sum(config["mean"]) / len(config["mean"])), float(sum(config["std"]) / len(config["std"]))


def save_classifier(folder: Path, model: nn.Module, card: ModelCard) -> None:
    """Write ``model.safetensors`` and ``classifier.json`` into ``folder``."""
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().contiguous() for key, value in model.state_dict().items()}
    save_file(state, str(folder / WEIGHTS))
    (folder / CARD).write_text(card.to_json())


def load_classifier(folder: Path) -> tuple[nn.Module, ModelCard]:
    """The model (in eval mode) and card saved by ``save_classifier``."""
    from safetensors.torch import load_file

    folder = Path(folder)
    if not (folder / CARD).is_file() or not (folder / WEIGHTS).is_file():
        raise ModelError(f"{folder}: not a classifier folder (needs {CARD} and {WEIGHTS})")
    card = ModelCard.from_json((folder / CARD).read_text())
    model = create_classifier(card.model, len(card.classes), card.model_kwargs)
    model.load_state_dict(load_file(str(folder / WEIGHTS)))
    return model.eval(), card


def probabilities(model: nn.Module, inputs: torch.Tensor, batch_size: int = 256) -> np.ndarray:
    """(N, C) softmax probabilities of normalised (N, 1, H, W) inputs, in eval mode."""
    model.eval()
    with torch.inference_mode():
        parts = [model(inputs[i:i + batch_size]).softmax(dim=1) for i in range(0, len(inputs), batch_size)]
    return torch.cat(parts).double().numpy()


def set_threads(threads: int) -> None:
    """Use ``threads`` CPU threads for torch (0 leaves torch's default)."""
    if threads:
        torch.set_num_threads(threads)
