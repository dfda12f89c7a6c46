"""Building timm classifiers, local pretrained weights, and saving without pickle."""

import numpy as np
import pytest
import timm
import torch
from safetensors.torch import save_file

from controlbreast.classify.models import (
    CARD,
    WEIGHTS,
    ModelCard,
    check_classifier,
    create_classifier,
    load_classifier,
    normalisation,
    probabilities,
    save_classifier,
)
from controlbreast.errors import ConfigError, ModelError

TINY = {"channels": [8, 8, 16, 16], "stem_width": 8}


def test_one_channel_model_with_class_outputs_and_probabilities():
    model = create_classifier("resnet10t", 3, TINY)
    probs = probabilities(model, torch.rand(5, 1, 32, 32))
    assert probs.shape == (5, 3) and probs.dtype == np.float64
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-6)
    mean, std = normalisation(model)
    assert 0 < mean < 1 and 0 < std < 1


def test_save_and_load_give_the_same_probabilities(tmp_path):
    torch.manual_seed(0)
    model = create_classifier("resnet10t", 2, TINY)
    card = ModelCard(model="resnet10t", classes=("no_cancer", "cancer"), image_size=32, resize="pad",
                     mean=0.45, std=0.22, model_kwargs=TINY, arm="real", seed=3, epoch=2, val_auc=0.75)
    save_classifier(tmp_path, model, card)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([CARD, WEIGHTS])
    loaded, loaded_card = load_classifier(tmp_path)
    assert loaded_card == card and not loaded.training
    inputs = torch.rand(4, 1, 32, 32)
    np.testing.assert_array_equal(probabilities(loaded, inputs), probabilities(model, inputs))


def test_local_pretrained_weights_load_the_backbone_and_drop_another_head(tmp_path):
    source = timm.create_model("resnet10t", in_chans=3, num_classes=1000, **TINY)
    save_file({k: v.contiguous() for k, v in source.state_dict().items()}, str(tmp_path / "w.safetensors"))
    model = create_classifier("resnet10t", 3, TINY, tmp_path / "w.safetensors")
    torch.testing.assert_close(model.conv1[0].weight, source.conv1[0].weight.sum(1, keepdim=True))
    torch.testing.assert_close(model.layer3[0].conv1.weight, source.layer3[0].conv1.weight)
    assert model.fc.weight.shape == (3, 16)


def test_unusable_weights_or_folders_are_clear_errors(tmp_path):
    with pytest.raises(ModelError, match="no such pretrained weights file"):
        create_classifier("resnet10t", 3, TINY, tmp_path / "missing.pth")
    (tmp_path / "bad.safetensors").write_bytes(b"garbage")
    with pytest.raises(ModelError, match=r"bad\.safetensors: cannot load into resnet10t"):
        create_classifier("resnet10t", 3, TINY, tmp_path / "bad.safetensors")
    other = timm.create_model("resnet10t", in_chans=1, num_classes=3, channels=[16, 16, 16, 16], stem_width=8)
    save_file(other.state_dict(), str(tmp_path / "other.safetensors"))
    with pytest.raises(ModelError, match="size mismatch"):
        create_classifier("resnet10t", 3, TINY, tmp_path / "other.safetensors")
    with pytest.raises(ModelError, match="not a classifier folder"):
        load_classifier(tmp_path)


@pytest.mark.parametrize(
    ("name", "kwargs", "key", "reason"),
    [
        ("resnet_nosuch", {}, "classifier.model", "Unknown model (resnet_nosuch)"),
        ("resnet10t", {"chanels": [8, 8, 16, 16]}, "classifier.model_kwargs", "unexpected keyword argument"),
        ("resnet10t", {**TINY, "drop_rate": "high"}, "classifier.model_kwargs", "could not convert string"),
        ("vit_tiny_patch16_224", {}, "classifier.model_kwargs", "doesn't match model (224)"),
    ],
)
def test_a_model_timm_cannot_build_or_run_is_a_config_error_naming_the_key(name, kwargs, key, reason):
    with pytest.raises(ConfigError) as error:
        check_classifier(name, 3, kwargs, 32, "my-params.yaml")
    message = str(error.value)
    assert message.startswith(f"my-params.yaml: {key}: ") and reason in message
    assert "\n" not in message


def test_a_buildable_model_passes_the_check_without_weights():
    check_classifier("resnet10t", 3, TINY, 32)
    check_classifier("vit_tiny_patch16_224", 2, {"img_size": 32, "patch_size": 8}, 32)
