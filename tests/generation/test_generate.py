"""generate: training-split controls only, per-image regeneration, atomic output, the gate."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from builders import make_config, tiny_config
from controlbreast.classify.config import RecipeConfig
from controlbreast.data.imageio import encode_png, load_png
from controlbreast.data.manifest import PreparedRow, SyntheticRow, manifest_bytes, read_manifest
from controlbreast.data.subsets import subset_ids
from controlbreast.diffusion import pipeline
from controlbreast.errors import ControlBreastError, DataQualityError
from controlbreast.generation.generate import (
    draw_rows,
    generate_set,
    guided_config,
    guided_rows,
    load_generator,
    model_hash,
    plan,
    regenerate,
    render,
    row_sampling,
    source_images,
    training_rows,
    varied_controls,
    write_empty_set,
    write_set,
)
from controlbreast.outputs import read_csv
from controlbreast.quality.validate import validate
from synthetic_builders import prepared_phantom

LENIENT = {"min_std": 0.0, "max_black_fraction": 1.0, "max_saturated_fraction": 1.0}  # 4-step models


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    return prepared_phantom(tmp_path_factory.mktemp("prepared"))


@pytest.fixture(scope="module")
def generated(prepared, tmp_path_factory):
    """Tiny base and ControlNet (4 steps each), then a set of 4 images per class."""
    root = tmp_path_factory.mktemp("generate")
    config = tiny_config(root, prepared, generate={"per_class": 4}, quality=LENIENT,
                         paths={"synthetic": str(root / "synthetic"), "reports": str(root / "reports")})
    pipeline.train_base(config)
    pipeline.train_controlnet(config)
    return config, generate_set(config, progress=False)


def manifest(config):
    return read_csv(Path(config.paths.synthetic) / "manifest.csv")


def test_controls_come_from_the_training_split_only(prepared):
    everything = read_manifest(Path(prepared.paths.prepared) / "manifest.csv", PreparedRow)
    split_of = {row.id: row for row in everything}
    config = prepared.model_copy(update={"generate": prepared.generate.model_copy(update={"per_class": 30})})
    rows = plan(config, training_rows(prepared.paths.prepared))
    assert {split_of[row["control_id"]].split for row in rows} == {"train"}
    assert all(split_of[row["control_id"]].label == row["label"] for row in rows)
    for label in config.data.classes:  # each control used before any is used again
        uses = np.unique([r["control_id"] for r in rows if r["label"] == label], return_counts=True)[1]
        assert uses.max() - uses.min() <= 1 and len(uses) == sum(
            1 for r in everything if r.split == "train" and r.label == label)
    with pytest.raises(ControlBreastError, match="training split only"):
        plan(config, everything)


def test_the_set_and_its_provenance(generated):
    config, summary = generated
    rows = manifest(config)
    assert summary["images"] == len(rows) == 12
    assert tuple(rows[0]) == SyntheticRow.columns()
    assert [r["label"] for r in rows] == [c for c in config.data.classes for _ in range(4)]
    assert len({r["seed"] for r in rows}) == 12
    assert {r["model_hash"] for r in rows} == {model_hash(config.paths.models)}
    assert {(r["steps"], r["scheduler"], r["guidance_scale"]) for r in rows} == {("3", "ddim", "2.0")}
    folder = Path(config.paths.synthetic)
    for row in rows:
        with Image.open(folder / "images" / f"{row['id']}.png") as image:
            assert image.mode == "L" and image.size == (32, 32)
        control = load_png(folder / "controls" / "edges" / f"{row['id']}.png")
        assert set(np.unique(control)) <= {0, 255}
        json.loads(row["variation"])


def test_any_image_regenerates_alone_from_its_row(generated):
    config, _ = generated
    rows = manifest(config)
    generator = load_generator(config)
    for row in (rows[5], rows[-1]):
        image = regenerate(config, row, generator)
        written = Path(config.paths.synthetic) / "images" / f"{row['id']}.png"
        assert encode_png(image) == written.read_bytes()
    with pytest.raises(ControlBreastError, match="cannot be regenerated identically"):
        regenerate(config, {**rows[0], "model_hash": "0" * 16}, generator)


def test_the_gate_passes_the_set_and_catches_a_test_split_control(generated, tmp_path):
    config, _ = generated
    assert validate(config, "synthetic")["passed"]
    leaked = config.model_copy(update={"paths": config.paths.model_copy(update={
        name: tmp_path / name for name in ("synthetic", "metrics", "reports")})})
    rows = manifest(config)
    real = read_csv(Path(config.paths.prepared) / "manifest.csv")
    test_id = next(r["id"] for r in real if r["split"] == "test")
    rows[2]["control_id"] = test_id
    images = np.stack([load_png(Path(config.paths.synthetic) / "images" / f"{r['id']}.png") for r in rows])
    controls = images[:, None]
    write_set(leaked.paths.synthetic, rows, images, controls, ("edges",))
    with pytest.raises(DataQualityError, match="training-split control") as error:
        validate(leaked, "synthetic")
    assert rows[2]["id"] in str(error.value)


def test_a_failed_write_leaves_the_previous_set(generated, tmp_path):
    config, _ = generated
    destination = tmp_path / "synthetic"
    rows = manifest(config)
    images = np.zeros((len(rows), 32, 32), np.uint8)
    write_set(destination, rows, images, images[:, None], ("edges",))
    before = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    with pytest.raises(ValueError):  # one image short: fails after writing the others
        write_set(destination, rows, images[:-1] + 1, images[:-1, None], ("edges",))
    after = {p.relative_to(destination): p.read_bytes() for p in destination.rglob("*") if p.is_file()}
    assert after == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["synthetic"]  # no build folder left


def test_changed_models_change_the_hash(generated, tmp_path):
    config, _ = generated
    rows = manifest(config)
    copy = tmp_path / "models"
    for part in ("base", "controlnet"):
        source = Path(config.paths.models) / part
        for path in source.rglob("*"):
            if path.is_file():
                target = copy / part / path.relative_to(source)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(path.read_bytes())
    assert model_hash(copy) == rows[0]["model_hash"]
    (copy / "controlnet" / "control.json").write_text('{"channels": ["edges"]} \n')
    assert model_hash(copy) != rows[0]["model_hash"]
    assert manifest_bytes(rows, SyntheticRow) == (Path(config.paths.synthetic) / "manifest.csv").read_bytes()


def test_the_set_has_its_own_sampler_when_params_give_one(prepared):
    own = {"scheduler": "unipc", "steps": 7, "guidance_scale": 1.0, "controlnet_scale": 0.5}
    config = prepared.model_copy(update={"generate": prepared.generate.model_copy(update={
        "per_class": 1, "sampling": prepared.sampling.model_copy(update=own)})})
    rows = plan(config, training_rows(config.paths.prepared))
    assert {(r["scheduler"], r["steps"], r["guidance_scale"], r["controlnet_scale"]) for r in rows} == {
        ("unipc", 7, 1.0, 0.5)}
    assert plan(prepared, training_rows(config.paths.prepared))[0]["steps"] == prepared.sampling.steps


def test_strength_one_is_the_pure_noise_sampler_bit_for_bit(generated):
    config, _ = generated
    generator = load_generator(config)
    rows = manifest(config)[:4]
    assert {float(r["strength"]) for r in rows} == {1.0}
    controls = varied_controls(config.paths.controls, rows, generator.channels)
    sources = source_images(config.paths.prepared, rows)
    plain = render(generator, rows, controls, row_sampling(rows[0], 4))
    with_sources = render(generator, rows, controls, row_sampling(rows[0], 4), sources=sources)
    folder = Path(config.paths.synthetic) / "images"
    assert np.array_equal(plain, with_sources)
    assert np.array_equal(plain, np.stack([load_png(folder / f"{r['id']}.png") for r in rows]))


def test_small_strength_stays_close_to_its_varied_source_image(generated):
    config, _ = generated
    generator = load_generator(config)
    rows = manifest(config)[:6]
    sources = source_images(config.paths.prepared, rows)[:, 0].astype(float)
    distance = {}
    for strength in (0.1, 0.5, 1.0):
        guided = [{**row, "strength": strength, "steps": 10} for row in rows]
        images, _ = draw_rows(config, generator, guided, row_sampling(guided[0], 6))
        distance[strength] = np.abs(images.astype(float) - sources).mean() / 255
    assert distance[0.1] < 0.08 and distance[0.1] < distance[0.5] < distance[1.0]
    again = regenerate(config, {**rows[0], "strength": 0.5, "steps": 10}, generator)
    assert np.array_equal(again, draw_rows(config, generator, [{**rows[0], "strength": 0.5, "steps": 10}],
                                           row_sampling({**rows[0], "steps": 10}))[0][0])


def test_the_real_guided_set_is_the_plain_sets_rows_started_from_their_real_images(generated, tmp_path):
    config, _ = generated
    recipes = {"real+guided": RecipeConfig(synthetic="guided")}  # at classifier.mix_ratio 1: every control
    paths = config.paths.model_copy(update={"synthetic_guided": tmp_path / "guided"})
    classifier = config.classifier.model_copy(update={"recipes": recipes})
    config = config.model_copy(update={"paths": paths, "classifier": classifier})
    guided = guided_config(config)
    assert Path(guided.paths.synthetic) == tmp_path / "guided" and guided.generate.strength == 0.6
    generate_set(guided, progress=False, guided=True)
    plain, rows = manifest(config), manifest(guided)
    same = ("id", "label", "control_id", "seed", "variation")
    assert [{k: r[k] for k in same} for r in rows] == [{k: r[k] for k in same} for r in plain]
    assert {r["strength"] for r in rows} == {"0.6"}
    drawn = np.stack([load_png(tmp_path / "guided" / "images" / f"{r['id']}.png") for r in rows])
    again = draw_rows(guided, load_generator(guided), rows[:2], row_sampling(rows[0]))[0]
    assert np.array_equal(again, drawn[:2])  # each image is its row's, regenerated alone
    off = config.model_copy(update={"generate": config.generate.model_copy(update={"guided_strength": None})})
    assert guided_config(off) is None


def test_the_guided_set_holds_what_each_fractions_guided_arm_draws_and_no_more(prepared, tmp_path):
    fractions = (0.25, 0.5, 1.0)
    config = make_config(tmp_path, paths={"prepared": str(prepared.paths.prepared)},
                         classifier={"real_fractions": list(fractions), "mix_ratio": 0.1,
                                     "recipes": {"real+guided": {"synthetic": "guided", "mix_ratio": 0.3},
                                                 "real+filtered": {"synthetic": "filtered"}}})
    train = training_rows(config.paths.prepared)
    rows = plan(config, train)
    kept = guided_rows(config, train, rows)
    assert [r for r in rows if r in kept] == kept  # the plain set's own rows, in its order
    label = {r.id: r.label for r in train}
    for c in config.data.classes:
        mine = [r for r in kept if r["label"] == c]
        assert len(mine) == np.ceil(0.3 * sum(r.label == c for r in train))
        assert len({r["control_id"] for r in mine}) == len(mine)
    for f in fractions:  # every fraction's arm finds what it draws among its subset's controls
        ids = subset_ids(config, f)
        for c in config.data.classes:
            n = sum(label[i] == c for i in ids)
            assert sum(r["control_id"] in ids and r["label"] == c for r in kept) >= round(0.3 * n), (f, c)
    assert len(kept) < len(rows) / 2
    own = {"real+guided": RecipeConfig(synthetic="guided")}  # at classifier.mix_ratio, here 1.5: repeats
    more = config.model_copy(update={"classifier": config.classifier.model_copy(update={"mix_ratio": 1.5,
                                                                                     "recipes": own})})
    assert guided_rows(more, train, rows) == rows
    none = config.model_copy(update={"classifier": config.classifier.model_copy(update={"recipes": {}})})
    assert guided_rows(none, train, rows) == []


def test_a_guided_recipe_needs_a_guided_strength_and_without_one_the_set_is_empty(tmp_path):
    guided = {"recipes": {"real+guided": {"synthetic": "guided"}}}
    with pytest.raises(ControlBreastError, match=r"real\+guided.*generate.guided_strength is null"):
        make_config(tmp_path, generate={"guided_strength": None}, classifier=guided)
    config = make_config(tmp_path, generate={"guided_strength": None})
    write_empty_set(tmp_path / "empty", config.controls.channels)
    assert read_csv(tmp_path / "empty" / "manifest.csv") == []
