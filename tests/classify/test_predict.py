"""``controlbreast predict``, the MLflow model and serving: one preprocessing, one set of numbers."""

import csv
import io
import json
from pathlib import Path

import cv2
import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow.models import convert_input_example_to_serving_input
from mlflow.pyfunc import scoring_server
from typer.testing import CliRunner

from classifier_builders import split_ids
from controlbreast.classify.predict import Predictor, image_files, load_predictor
from controlbreast.classify.registry import CHAMPION, REGISTERED_NAME
from controlbreast.cli import app
from controlbreast.data.preprocess import fit_to_square
from controlbreast.errors import ControlBreastError, ModelError, SampleError
from controlbreast.tracking import use_store


@pytest.fixture(scope="module")
def setup(trained_classifiers):
    config = trained_classifiers.config
    folder = Path(config.paths.classifiers) / "real" / "seed-0"
    files = [Path(config.paths.prepared) / "images" / f"{i}.png" for i in split_ids(config, "test")[:3]]
    return trained_classifiers, folder, files


def run_predict(*args: str):
    return CliRunner().invoke(app, ["predict", *args])


def parse(output: str) -> dict[str, list[float]]:
    return {row.pop("image"): [float(v) for v in row.values()] for row in csv.DictReader(io.StringIO(output))}


def test_pyfunc_model_and_serving_give_the_folders_probabilities(setup):
    trained, _, files = setup
    use_store(trained.config)
    uri = f"models:/{REGISTERED_NAME}/1"  # the first registered version: the best real seed
    version = mlflow.MlflowClient().get_model_version(REGISTERED_NAME, "1")
    best = Path(trained.config.paths.classifiers) / "real" / f"seed-{version.tags['seed']}"
    expected = Predictor.from_folder(best).predict_files(files)
    table = pd.DataFrame({"image": [f.read_bytes() for f in files]})
    model = mlflow.pyfunc.load_model(uri)
    np.testing.assert_allclose(model.predict(table).to_numpy(), expected, rtol=0, atol=1e-12)
    # what `mlflow models serve` runs on a POST to /invocations (images as base64 in JSON)
    response = scoring_server.invocations(convert_input_example_to_serving_input(table), "application/json",
                                          model, model.metadata.get_input_schema())
    assert response.status == 200, response.response
    served = pd.DataFrame(json.loads(response.response)["predictions"])
    assert list(served.columns) == ["normal", "benign", "malignant"]
    np.testing.assert_allclose(served.to_numpy(), expected, rtol=0, atol=1e-12)
    np.testing.assert_allclose(load_predictor(uri).predict_files(files), expected, rtol=0, atol=1e-12)


def test_cli_prints_the_same_probabilities_from_a_folder_and_from_the_champion(setup):
    trained, folder, files = setup
    result = run_predict(*map(str, files), "--model", str(folder))
    assert result.exit_code == 0, result.output
    printed = parse(result.stdout)
    expected = Predictor.from_folder(folder).predict_files(files)
    assert list(printed) == [str(f) for f in files]
    np.testing.assert_allclose(list(printed.values()), expected, atol=5e-7)

    champion = run_predict(str(files[0]), "--params", str(trained.params))
    assert champion.exit_code == 0, champion.output
    use_store(trained.config)
    version = mlflow.MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CHAMPION)
    arm, seed = version.tags["arm"], version.tags["seed"]
    best = Predictor.from_folder(Path(trained.config.paths.classifiers) / arm / f"seed-{seed}")
    (printed_row,) = parse(champion.stdout).values()
    np.testing.assert_allclose(printed_row, best.predict_files(files[:1])[0], atol=5e-7)


def test_any_size_and_mode_gets_trainings_preprocessing(setup, tmp_path):
    _, folder, _ = setup
    predictor = Predictor.from_folder(folder)
    rng = np.random.default_rng(0)
    gray = rng.integers(0, 256, (48, 80), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / "wide.png"), np.repeat(gray[:, :, None], 3, axis=2))  # RGB, other size
    fitted = fit_to_square(gray, predictor.card.image_size, predictor.card.resize)
    np.testing.assert_allclose(predictor.predict_files([tmp_path / "wide.png"]),
                               predictor.predict_pixels([fitted]), atol=1e-12)


def test_a_bad_image_is_a_clear_error(setup, tmp_path):
    _, folder, files = setup
    broken = tmp_path / "broken.png"
    broken.write_bytes(files[0].read_bytes()[:60])
    with pytest.raises(SampleError, match=r"broken\.png"):
        Predictor.from_folder(folder).predict_files([files[0], broken])
    result = run_predict(str(files[0]), str(broken), "--model", str(folder))
    assert result.exit_code == 1
    assert "error:" in result.stderr and "broken.png" in result.stderr
    assert "Traceback" not in result.output and result.stdout == ""
    missing = run_predict(str(tmp_path / "nowhere.png"), "--model", str(folder))
    assert missing.exit_code == 1 and "nowhere.png" in missing.stderr and "not found" in missing.stderr


def test_bad_model_sources_are_clear_errors(setup, tmp_path):
    trained, _, files = setup
    with pytest.raises(ModelError, match="neither a classifier folder"):
        load_predictor(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="not a classifier folder"):
        load_predictor(str(tmp_path))
    result = run_predict(str(files[0]), "--model", "no-such-alias", "--params", str(trained.params))
    assert result.exit_code == 1 and "cannot load the model" in result.stderr


def test_folders_expand_to_their_images(setup, tmp_path):
    _, _, files = setup
    (tmp_path / "sub").mkdir()
    for n, file in enumerate(files):
        (tmp_path / "sub" / f"{n}.PNG").write_bytes(file.read_bytes())
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    assert image_files([tmp_path, files[0]]) == [*(tmp_path / "sub" / f"{n}.PNG" for n in range(3)), files[0]]
    (tmp_path / "empty").mkdir()
    with pytest.raises(ControlBreastError, match="no image files"):
        image_files([tmp_path / "empty"])
