"""The ``tune`` section: a bad range or an unknown dimension stops the run naming the key."""

from __future__ import annotations

import pytest

from controlbreast.config import parse_config
from controlbreast.errors import ConfigError
from controlbreast.mixing import check_mix_fits, tune_per_class


@pytest.mark.parametrize(("tune", "message"), [
    ({"guidance_scale": {"low": 3.0, "high": 1.0}}, r"tune\.guidance_scale: low 3 > high 1"),
    ({"mix_ratio": {"low": 0.0, "high": 0.5, "log": True}}, r"tune\.mix_ratio: .*log needs low > 0"),
    ({"controlnet_scale": {"low": 0.5, "high": 9.0}}, r"tune: .*controlnet_scale must lie within \[0, 5\]"),
    ({"steps": {"low": 10, "high": 20}}, r"tune\.steps: unknown key"),
    ({"guidance_scale": {"low": 1.0, "high": 2.0, "stride": 0.5}},
     r"tune\.guidance_scale\.stride: unknown key"),
    ({"pruner": "asha"}, r"tune\.pruner: Input should be 'median', 'hyperband' or 'none'"),
    ({"heartbeat_interval": 30, "grace_period": 20}, r"grace_period must exceed heartbeat_interval"),
])
def test_a_bad_tune_section_names_the_key(tune, message):
    with pytest.raises(ConfigError, match=message):
        parse_config({"tune": tune}, "params.yaml")


def test_the_optional_dimensions_join_the_search_space_in_order():
    tune = parse_config({"tune": {"synthetic_count": {"low": 8, "high": 32}, "controlnet_scale":
                                  {"low": 0.5, "high": 1.5}}}).tune
    assert list(tune.dimensions()) == ["guidance_scale", "mix_ratio", "controlnet_scale", "synthetic_count"]
    assert list(parse_config({}).tune.dimensions()) == ["guidance_scale", "mix_ratio"]


def test_real_guided_strength_is_a_dimension_that_lands_in_generate_and_keys_the_set():
    from controlbreast.tuning.objective import set_key, trial_config

    config = parse_config({"tune": {"strength": {"low": 0.5, "high": 1.0, "step": 0.25}}})
    assert list(config.tune.dimensions())[-1] == "strength"
    trial = trial_config(config, {"strength": 0.75, "guidance_scale": 2.0, "mix_ratio": 0.1})
    assert trial.generate.strength == 0.75 and set_key(trial, "m")["strength"] == 0.75
    with pytest.raises(ConfigError, match="strength"):
        parse_config({"tune": {"strength": {"low": 0.0, "high": 1.0}}})


def test_a_mix_ratio_that_no_trial_set_can_feed_is_refused():
    config = parse_config({"tune": {"per_class": 10, "mix_ratio": {"low": 0.1, "high": 0.5}}})
    check_mix_fits(config.tune, 3, real_images=60)  # 30 needed, 30 made
    with pytest.raises(ConfigError, match=r"tune\.mix_ratio\.high 0\.5 needs 50 synthetic images .* set "
                       r"tune\.per_class to 17 \(or auto\), or tune\.mix_ratio\.high to 0\.3"):
        check_mix_fits(config.tune, 3, real_images=100)


def test_an_auto_trial_set_follows_the_training_split():
    """BUSI's 419 training images at mix_ratio.high 0.15 need 63 images, 21 per class; the phantom's
    316 need 47, the 16 per class params.yaml fixes."""
    config = parse_config({"tune": {"per_class": "auto"}})
    assert tune_per_class(config.tune, 3, 419) == 21 and tune_per_class(config.tune, 3, 316) == 16
    check_mix_fits(config.tune, 3, real_images=419)


def test_a_tuned_value_replacing_a_params_value_is_said_with_its_source():
    from controlbreast.tuning.tuned import overrides

    config = parse_config({"classifier": {"mix_ratio": 5.0}, "paths": {"metrics": "m"},
                           "generate": {"sampling": {"guidance_scale": 2.0}}}, "params.yaml")
    lines = overrides(config, {"mix_ratio": 0.1, "guidance_scale": 2.0}, "params.yaml")
    assert lines == ["classifier.mix_ratio: 5.0 in params.yaml is replaced by the tuned 0.1 (best trial of "
                     "m/tune.json; tune.n_trials: 0 keeps the params value)"]  # guidance unchanged: silent
    sampled = parse_config({"generate": {"sampling": {"guidance_scale": 2.0}}}, "params.yaml")
    assert overrides(sampled, {"guidance_scale": 3.5}, "p.yaml")[0].startswith(
        "generate.sampling.guidance_scale: 2.0 in p.yaml is replaced by the tuned 3.5")
    assert overrides(config, {}, "params.yaml") == []
