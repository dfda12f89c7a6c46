from pathlib import Path

import pytest
import yaml

from controlbreast.config import Config, load_config, parse_config
from controlbreast.errors import ConfigError
from controlbreast.overlay import deep_merge

REPO = Path(__file__).resolve().parents[1]


def _disagreements(schema: object, params: object, key: str = "") -> list[str]:
    """Each dotted key whose value differs between two dumped configs."""
    if isinstance(schema, dict) and isinstance(params, dict):
        return [line for name in dict.fromkeys([*schema, *params])
                for line in _disagreements(schema.get(name), params.get(name), f"{key}.{name}".lstrip("."))]
    return [] if schema == params else [f"{key}: schema {schema!r}, params.yaml {params!r}"]


def test_params_yaml_and_the_schema_give_each_knob_one_default():
    """A default exists once: params.yaml's value of every knob is its class default (in the config.py
    of the package owning the section; a knob the project sets on purpose changes both)."""
    differ = _disagreements(Config().model_dump(mode="json"),
                            load_config(REPO / "params.yaml").model_dump(mode="json"))
    assert not differ, "params.yaml and the sections disagree; make them agree:\n  " + "\n  ".join(differ)


def test_repository_params_parse():
    config = load_config(REPO / "params.yaml")
    assert config.data.source == "phantom"
    assert config.controls.channels == ("edges",)


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"data": {"image_sise": 64}}, "data.image_sise", "unknown key"),
        ({"dat": {}}, "dat", "unknown key"),
        ({"data": {"image_size": "big"}}, "data.image_size", "expected a number"),
        ({"data": {"image_size": 8}}, "data.image_size", "greater than or equal to 16"),
        ({"data": {"split": {"train": 0.9, "val": 0.2, "test": 0.1}}}, "data.split", "must be 1"),
        ({"data": {"source": "busi"}}, "data", "needs data.root"),
        ({"data": {"label_map": {"benign": "cancer"}}}, "data", "not in classes"),
        ({"controls": {"kind": "depth"}}, "controls.kind", "'edges'"),
        ({"controls": {"canny_low": 10}}, "controls", "set both"),
        ({"controls": {"blur_kernel": 4}}, "controls", "odd"),
        ({"classifier": {"model": "hf-hub:timm/resnet18.a1_in1k"}}, "classifier", "Hugging Face Hub"),
        ({"data": {"min_side": 0}}, "data.min_side", "greater than or equal to 1"),
        ({"evaluate": {"external": [{"name": "bus-bra", "source": "csv", "manifest": "m.csv"}]}},
         "evaluate.external.0", "external set 'bus-bra' (source csv) lacks root (root: the folder"),
        ({"evaluate": {"external": [{"name": "b", "source": "busi"}]}}, "evaluate.external.0",
         "external set 'b' (source busi) lacks root"),
        ({"evaluate": {"external": [{"name": "s", "label_map": {"malignant": "cancer"}}]}}, "(top level)",
         "evaluate.external 's': label_map maps to ['cancer'], which are not in data.classes"),
    ],
)
def test_bad_params_name_the_key_and_the_file(raw, key, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "my-params.yaml")
    text = str(error.value)
    assert text.startswith("my-params.yaml: invalid parameters")
    assert f"  {key}:" in text and message in text


@pytest.mark.parametrize(
    ("raw", "key", "message"),
    [
        ({"train_base": {"steps": True}}, "train_base.steps", "expected a number, got true"),
        ({"classifier": {"mix_ratio": "1.5"}}, "classifier.mix_ratio", "got the string '1.5'"),
        ({"classifier": {"seeds": [0, True]}}, "classifier.seeds", "item 1: expected a number"),
        ({"synthetic_eval": {"classifier_seed": False}}, "synthetic_eval.classifier_seed", "got false"),
        ({"data": {"workers": True}}, "data.workers", "expected a number"),
        ({"diffusion": {"hflip": 1}}, "diffusion.hflip", "expected true or false"),
        ({"diffusion": {"pixel": {"attention": [0, 0, 0, 1]}}}, "diffusion.pixel.attention", "true or false"),
    ],
)
def test_values_that_fit_only_by_coercion_are_refused(raw, key, message):
    with pytest.raises(ConfigError) as error:
        parse_config(raw, "my-params.yaml")
    line = next(line for line in str(error.value).splitlines() if line.startswith(f"  {key}: "))
    assert message in line


def test_numbers_keep_their_usual_yaml_spellings(tmp_path):
    params = tmp_path / "params.yaml"
    params.write_text("classifier:\n  learning_rate: 1e-3\n  weight_decay: 1.5E-4\n  mix_ratio: 2\n"
                      "evaluate:\n  positive_class: benign\nsynthetic_eval:\n  inception_weights: w.pth\n")
    config = load_config(params)
    assert config.classifier.learning_rate == 0.001 and config.classifier.weight_decay == 0.00015
    assert config.classifier.mix_ratio == 2.0 and config.synthetic_eval.inception_weights == Path("w.pth")


def test_load_config_reports_missing_and_malformed_files(tmp_path):
    with pytest.raises(ConfigError, match="no such params file"):
        load_config(tmp_path / "absent.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("data: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(bad)
    bad.write_text("- a list\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_config(bad)


def test_two_class_mapping():
    config = parse_config(yaml.safe_load("""
data:
  classes: [no_cancer, cancer]
  label_map: {normal: no_cancer, benign: no_cancer, malignant: cancer}
"""))
    assert [config.data.to_class(x) for x in ("normal", "benign", "malignant", "cyst")] == [
        "no_cancer", "no_cancer", "cancer", None]


def test_config_is_frozen():
    config = parse_config({})
    with pytest.raises(ValueError, match="frozen"):
        config.data.image_size = 32


def test_params_read_as_yaml_1_2_like_dvc_writes_them(tmp_path):
    """`dvc exp run --set-param` rewrites params.yaml without quotes: `no` must stay a string."""
    path = tmp_path / "params.yaml"
    path.write_text("train_base:\n  mixed_precision: no\n  learning_rate: 1e-3\n"
                    "  gradient_checkpointing: true\n")
    config = load_config(path)
    assert config.train_base.mixed_precision == "no"
    assert config.train_base.learning_rate == 0.001 and config.train_base.gradient_checkpointing is True


def test_every_profile_is_a_valid_overlay_of_params():
    """A profile (``profiles/*.yaml``) names only keys that exist, with valid values."""

    base = yaml.safe_load((REPO / "params.yaml").read_text())
    profiles = sorted((REPO / "profiles").glob("*.yaml"))
    assert profiles
    for profile in profiles:
        config = parse_config(deep_merge(base, yaml.safe_load(profile.read_text())), profile)
        assert config.data.image_size >= 16
    mammo = parse_config(deep_merge(base, yaml.safe_load((REPO / "profiles" / "mammo-cpu.yaml").read_text())))
    assert mammo.data.patches.enabled and mammo.phantom.modality == "mammography"
