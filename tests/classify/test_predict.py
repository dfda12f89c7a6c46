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

from builders import mammogram
from classifier_builders import split_ids
from controlbreast.classify.predict import Predictor, image_files, load_predictor
from controlbreast.classify.registry import CANDIDATE, REGISTERED_NAME
from controlbreast.cli import app
from controlbreast.data.config import MammographyConfig
from controlbreast.data.mammo import orient
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
    rows = list(csv.DictReader(io.StringIO(output)))
    assert all(row.pop("error") == "" for row in rows)
    return {row.pop("image"): [float(v) for v in row.values()] for row in rows}


def tiny_folder(root: Path, **card_fields) -> Path:
    """An untrained tiny classifier folder (fast to build; predict only needs a real model)."""
    from controlbreast.classify.models import ModelCard, create_classifier, save_classifier

    tiny = {"channels": [8, 8, 16, 16], "stem_width": 8}
    model = create_classifier("resnet10t", 3, tiny)
    card = ModelCard(model="resnet10t", classes=("normal", "benign", "malignant"), image_size=32,
                     resize="pad", mean=0.45, std=0.22, model_kwargs=tiny, **card_fields)
    save_classifier(root / "model", model, card)
    return root / "model"


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


def test_cli_prints_the_same_probabilities_from_a_folder_and_from_a_registry_alias(setup):
    trained, folder, files = setup
    result = run_predict(*map(str, files), "--model", str(folder))
    assert result.exit_code == 0, result.output
    printed = parse(result.stdout)
    expected = Predictor.from_folder(folder).predict_files(files)
    assert list(printed) == [str(f) for f in files]
    np.testing.assert_allclose(list(printed.values()), expected, atol=5e-7)

    # the candidate: promoting one here would change the registry the registry tests share
    champion = run_predict(str(files[0]), "--params", str(trained.params), "--model", CANDIDATE)
    assert champion.exit_code == 0, champion.output
    use_store(trained.config)
    version = mlflow.MlflowClient().get_model_version_by_alias(REGISTERED_NAME, CANDIDATE)
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


def test_a_whole_mammogram_is_cropped_and_mirrored_as_ingest_does(tmp_path):
    settings = MammographyConfig()
    predictor = Predictor.from_folder(tiny_folder(tmp_path, modality="mammography",
                                                  mammography=settings.model_dump()))
    films = {}
    for side in ("L", "R"):
        film = (mammogram(3, side)[0] >> 4).astype(np.uint8)  # 12-bit film as an 8-bit PNG
        films[side] = tmp_path / f"{side}.png"
        cv2.imwrite(str(films[side]), film)
    left = (mammogram(3, "L")[0] >> 4).astype(np.uint8)
    expected = predictor.predict_pixels([fit_to_square(orient(left, None, 8, settings)[0], 32, "pad")])
    np.testing.assert_allclose(predictor.predict_files([films["L"], films["R"]]),
                               np.repeat(expected, 2, axis=0), atol=1e-6)  # both lateralities alike


def test_a_patch_classifier_refuses_a_whole_film(tmp_path):
    predictor = Predictor.from_folder(tiny_folder(tmp_path, modality="mammography", patches=True))
    film = tmp_path / "film.png"
    cv2.imwrite(str(film), (mammogram(3)[0] >> 4).astype(np.uint8))
    with pytest.raises(SampleError, match="patches"):
        predictor.predict_files([film])
    patch = tmp_path / "patch.png"
    cv2.imwrite(str(patch), np.full((32, 32), 90, np.uint8))
    assert predictor.predict_files([patch]).shape == (1, 3)


def test_a_bad_file_gets_an_error_row_and_the_others_their_scores(tmp_path):
    folder = tiny_folder(tmp_path)
    good = tmp_path / "good.png"
    cv2.imwrite(str(good), np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8))
    broken = tmp_path / "broken.png"
    broken.write_bytes(good.read_bytes()[:60])
    with pytest.raises(SampleError, match=r"broken\.png"):
        Predictor.from_folder(folder).predict_files([good, broken])
    args = [str(good), str(broken), str(tmp_path / "nowhere.png"), "--model", str(folder)]
    result = run_predict(*args)
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["image"] for row in rows] == args[:3]
    assert rows[0]["error"] == "" and rows[2]["error"] == "file not found" and rows[1]["error"]
    assert rows[1]["malignant"] == "" and "Traceback" not in result.output
    expected = Predictor.from_folder(folder).predict_files([good])[0]
    printed = [float(rows[0][c]) for c in ("normal", "benign", "malignant")]
    np.testing.assert_allclose(printed, expected, atol=5e-7)
    assert "2 of 3 files could not be read" in result.stderr
    strict = run_predict(*args, "--strict")
    assert strict.exit_code == 1 and strict.stdout == result.stdout
    assert strict.stderr.startswith("error: 2 of 3 files could not be read") and "--strict" in strict.stderr


def test_an_alias_outside_the_project_says_what_it_needs(tmp_path, monkeypatch):
    image = tmp_path / "scan.png"
    cv2.imwrite(str(image), np.zeros((20, 20), np.uint8))
    monkeypatch.chdir(tmp_path)
    result = run_predict(str(image))
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert result.stderr.startswith("error: params.yaml: no such params file; --model champion names a "
                                    "model of the project's registry")
    assert "--params PATH" in result.stderr and "--model DIR" in result.stderr
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    result = run_predict(str(image), "--model", "candidate")
    assert result.exit_code == 1 and "mlruns/mlflow.db: no MLflow store" in result.stderr
    assert not (tmp_path / "mlruns").exists()  # no empty store made as a side effect

def test_bad_model_sources_are_clear_errors(setup, tmp_path):
    trained, _, files = setup
    with pytest.raises(ModelError, match="neither a classifier folder"):
        load_predictor(str(tmp_path / "no-such-model"))
    with pytest.raises(ModelError, match="not a classifier folder"):
        load_predictor(str(tmp_path))
    result = run_predict(str(files[0]), "--model", "no-such-alias", "--params", str(trained.params))
    assert result.exit_code == 1 and "cannot load the model" in result.stderr


def test_folders_expand_to_their_images_and_leave_masks_out(tmp_path):
    (tmp_path / "sub").mkdir()
    scans = [tmp_path / "sub" / f"benign ({n}).PNG" for n in range(3)]
    for scan in scans:
        cv2.imwrite(str(scan), np.zeros((8, 8), np.uint8))
        cv2.imwrite(str(scan.with_name(scan.stem + "_mask.png")), np.zeros((8, 8), np.uint8))
    cv2.imwrite(str(tmp_path / "sub" / "benign (0)_mask_1.png"), np.zeros((8, 8), np.uint8))
    (tmp_path / "sub" / "notes.txt").write_text("not an image")
    named_mask = tmp_path / "sub" / "benign (1)_mask.png"
    assert image_files([tmp_path, named_mask]) == ([*scans, named_mask], 4)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ControlBreastError, match="no image files"):
        image_files([tmp_path / "empty"])
    (tmp_path / "masks").mkdir()
    cv2.imwrite(str(tmp_path / "masks" / "a_mask.png"), np.zeros((8, 8), np.uint8))
    with pytest.raises(ControlBreastError, match="only 1 mask files"):
        image_files([tmp_path / "masks"])


def test_predict_on_a_busi_folder_scores_scans_only(busi_root, tmp_path):
    result = run_predict(str(busi_root / "benign"), "--model", str(tiny_folder(tmp_path)))
    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert len(rows) == 6 and not any("_mask" in row["image"] for row in rows)
    assert "left out 7 mask files" in result.stderr


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A tiny classifier logged as the project's MLflow model, behind MLflow's real scoring app
    (uvicorn on 127.0.0.1, an ephemeral port), as `mlflow models serve` runs it."""
    import socket
    import threading
    import time

    import uvicorn

    from controlbreast.classify.predict import log_pyfunc
    from controlbreast.tracking import point_mlflow

    root = tmp_path_factory.mktemp("served")
    point_mlflow(f"sqlite:///{root / 'mlflow.db'}")  # (mlflow.set_tracking_uri would export it)
    mlflow.set_experiment("served")
    with mlflow.start_run():
        info = log_pyfunc(tiny_folder(root))
    app = scoring_server.init(mlflow.pyfunc.load_model(info.model_uri))
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="critical"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/invocations"
    server.should_exit = True
    thread.join(10)


def post(url: str, images: list[bytes]) -> tuple[int, str]:
    import urllib.error
    import urllib.request

    body = convert_input_example_to_serving_input(pd.DataFrame({"image": images})).encode()
    request = urllib.request.Request(url, body, {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def test_the_served_model_answers_a_corrupt_image_with_one_line_and_no_trace(served):
    good = cv2.imencode(".png", np.random.default_rng(0).integers(0, 256, (40, 40), dtype=np.uint8))[1]
    status, body = post(served, [good.tobytes()])
    assert status == 200 and len(json.loads(body)["predictions"]) == 1
    status, body = post(served, [good.tobytes(), good.tobytes()[:60]])
    answer = json.loads(body)
    assert status == 400 and answer["error_code"] == "INVALID_PARAMETER_VALUE"
    reason = answer["message"].splitlines()[-1]
    assert reason.startswith("Error: row 1: ") and ("corrupt" in reason or "not a readable image" in reason)
    assert "stack_trace" not in answer and "Traceback" not in body
    assert "/src/" not in body and ".py" not in body


def test_only_the_projects_mlflow_models_are_loaded(tmp_path):
    """Loading an MLflow model unpickles: any other URI or MLflow folder is refused, saying so."""
    from builders import make_config
    from classifier_builders import write_params
    from controlbreast.tracking import stage_run

    image = tmp_path / "scan.png"
    cv2.imwrite(str(image), np.zeros((20, 20), np.uint8))
    downloaded = tmp_path / "downloaded"
    downloaded.mkdir()
    (downloaded / "MLmodel").write_text("flavors: {}\n")
    for source in ("s3://bucket/model", "models:/someone-elses-model/1", str(downloaded)):
        result = run_predict(str(image), "--model", source)
        assert result.exit_code == 1 and "Traceback" not in result.output
        assert result.stderr.startswith(f"error: {source}: not this project's model. Loading an MLflow "
                                        "model runs its code and unpickles its objects")
    config = make_config(tmp_path / "project")
    params = write_params(config, tmp_path / "params.yaml")
    with stage_run(config, "train_classifier", ()) as run:
        pass
    stranger = "0" * 32
    result = run_predict(str(image), "--params", str(params), "--model", f"runs:/{stranger}/model")
    assert result.exit_code == 1
    assert f"run '{stranger}' is not in this project's MLflow store" in result.stderr
    result = run_predict(str(image), "--params", str(params), "--model", f"runs:/{run.info.run_id}/model")
    assert "cannot load the model" in result.stderr  # the project's run is loaded (it holds no model)
