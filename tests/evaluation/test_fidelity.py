"""Realism metrics in the classifier's features, through torch-fidelity, with no download."""

import numpy as np
import pytest
import torch
import torch_fidelity

from controlbreast.data.datasets import load_image_set
from controlbreast.errors import ControlBreastError, ModelError
from controlbreast.evaluation.fidelity import (
    EXTRACTOR,
    FeatureSpace,
    ImageTensors,
    realism,
    realism_by_class,
    register,
)
from synthetic_builders import prepared_phantom, tiny_judge


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    config = prepared_phantom(tmp_path_factory.mktemp("fidelity"))
    images = load_image_set(config.paths.prepared, config.data.classes)
    return config, images, FeatureSpace.classifier(tiny_judge(config))


def noise_like(images: np.ndarray, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=images.shape, dtype=np.uint8)


def test_features_are_the_classifiers_penultimate_layer(phantom):
    _, images, space = phantom
    features = space(images.images[:5])
    model = space.extractor.model
    pixels = (torch.from_numpy(images.images[:5]).float()[:, None] / 255 - 0.3) / 0.2
    expected = model.forward_head(model.forward_features(pixels), pre_logits=True)
    assert features.shape == (5, model.num_features)
    torch.testing.assert_close(features, expected.detach())


def test_a_set_against_itself_is_near_zero_and_against_noise_is_large(phantom):
    _, images, space = phantom
    real = space(images.images)
    noise = space(noise_like(images.images))
    same, far = realism(real, real, kid_subset_size=20), realism(noise, real, kid_subset_size=20)
    assert same["fid"] < 1e-6 * far["fid"] and far["fid"] > 0
    assert abs(same["kid_mean"]) < 0.05 * far["kid_mean"]
    assert same["precision"] == same["recall"] == 1.0
    assert far["precision"] < 0.2


def test_kid_subset_is_capped_at_the_smaller_set(phantom):
    _, images, space = phantom
    features = space(images.images)
    result = realism(features[:5], features[5:40], kid_subset_size=1000)
    assert result["kid_subset_size"] == 5 and np.isfinite(result["kid_mean"])
    tiny = realism(features[:3], features[3:6], prc_neighborhood=3)
    assert "precision" not in tiny  # too few samples for 3 neighbours: left out, not made up


def test_per_class_realism_compares_each_class_with_its_own(phantom):
    _, images, space = phantom
    features = space(images.images)
    result = realism_by_class(features, images.labels, features, images.labels, images.classes,
                              kid_subset_size=5)
    assert set(result["per_class"]) == set(images.classes)
    assert all(value["fid"] < 1e-6 for value in result["per_class"].values())
    swapped = realism_by_class(features, (images.labels + 1) % 3, features, images.labels, images.classes,
                               kid_subset_size=5)
    same = max(value["fid"] for value in result["per_class"].values())
    assert all(swapped["per_class"][c]["fid"] > 100 * same + 1e-6 for c in images.classes)


def test_torch_fidelity_calculate_metrics_uses_the_registered_extractor(phantom):
    config, images, space = phantom
    register()
    folder = str(tiny_judge(config))
    half = len(images) // 2
    first, second = images.images[:half], images.images[half:2 * half]
    metrics = torch_fidelity.calculate_metrics(
        input1=ImageTensors(first), input2=ImageTensors(second), fid=True, kid=True, prc=True,
        feature_extractor=EXTRACTOR, feature_extractor_weights_path=folder, kid_subset_size=10,
        cuda=False, cache=False, save_cpu_ram=True, verbose=False)
    ours = realism(space(first), space(second), kid_subset_size=10)
    assert metrics["frechet_inception_distance"] == pytest.approx(ours["fid"], rel=1e-3)
    assert metrics["precision"] == ours["precision"] and metrics["recall"] == ours["recall"]


def test_inception_needs_a_local_weights_file(tmp_path):
    with pytest.raises(ControlBreastError, match=r"synthetic_eval\.inception_weights"):
        FeatureSpace.inception(tmp_path / "absent.pth")


def test_inception_fid_from_a_local_weights_file(tmp_path, phantom):
    from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3

    class Unloaded(FeatureExtractorInceptionV3):  # builds the layers; the weights stay random
        def load_state_dict(self, state_dict, strict=True, assign=False):
            return None

    empty, weights = tmp_path / "empty.pth", tmp_path / "inception.pth"
    torch.save({}, empty)
    torch.manual_seed(0)
    torch.save(Unloaded("random", ["2048"], feature_extractor_weights_path=str(empty)).state_dict(), weights)
    _, images, _ = phantom
    inception = FeatureSpace.inception(weights)
    features = inception(images.images[:4])
    assert features.shape == (4, 2048) and torch.isfinite(features).all()
    torch.testing.assert_close(inception(images.images[:4]), features)


class Marker:
    """A pickle whose loading would create a file: what a crafted weights file does."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (open, (str(self.path), "w"))


def test_a_crafted_inception_pickle_runs_no_code_and_is_refused(tmp_path):
    marker = tmp_path / "pwned"
    crafted = tmp_path / "weights-inception-2015-12-05-6726825d.pth"
    torch.save({"Conv2d_1a_3x3.conv.weight": Marker(marker)}, crafted)
    assert not marker.exists()
    with pytest.raises(ModelError) as error:
        FeatureSpace.inception(crafted)
    assert not marker.exists()
    message = str(error.value)
    assert message.startswith(f"synthetic_eval.inception_weights={crafted}: not a plain weights file")
    assert "\n" not in message
