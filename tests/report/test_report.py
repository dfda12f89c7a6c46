"""The report built from a small finished pipeline: sections, pictures, numbers, the Markdown twin,
the MLflow run, and sections that say so when an optional input is absent."""

from __future__ import annotations

import base64
import dataclasses
import io
import re
from pathlib import Path

from mlflow import MlflowClient
from PIL import Image
from tables import markdown_tables, page

from controlbreast.report.build import build_report
from controlbreast.report.inputs import collect
from controlbreast.report.numbers import interval, num
from controlbreast.report.result_sections import difference_cell
from controlbreast.tracking import tracking_uri

SECTIONS = ["glance", "answer", "data", "synthetic", "classifiers", "tuning", "provenance"]


def decodes_as_png(data: bytes) -> tuple[int, int]:
    assert data.startswith(b"\x89PNG\r\n\x1a\n")
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return image.size


def test_every_section_is_present_in_the_page_and_its_twin(built):
    _, _, reports = built
    html, markdown = (reports / "index.html").read_text(), (reports / "summary.md").read_text()
    assert page(html).sections == SECTIONS
    headings = re.findall(r"^## (.+)$", markdown, flags=re.M)
    assert headings == ["At a glance", "The answer: do synthetic images help?", "The data",
                        "The synthetic images", "The classifiers", "The tuning", "Provenance"]


def test_the_first_screen_gives_each_recipes_difference_from_real_with_its_verdict(built):
    _, metrics, reports = built
    markdown = (reports / "summary.md").read_text()
    answer = markdown.split("## The data")[0]
    cell = metrics["classifier"]["recipes"]["real+synthetic"]["1"]["test"]
    assert "real+synthetic: helps in" in answer and "recipe − real on the internal test split" in answer
    assert f"{cell['estimate']:+.3f}".replace("-", "−") in answer or f"{cell['estimate']:+.3f}" in answer
    assert "recipes.png" in answer


def test_every_picture_is_an_embedded_png_and_the_twin_links_existing_files(built):
    _, _, reports = built
    sources = page((reports / "index.html").read_text()).images
    assert len(sources) >= 12  # counts, examples, 3 grids, pairs, ROC, calibration, training, 3 tuning
    for source in sources:  # nothing outside the file: it opens from file:// with no network
        assert source.startswith("data:image/png;base64,")
        width, height = decodes_as_png(base64.b64decode(source.split(",", 1)[1]))
        assert width > 0 and height > 0
    linked = re.findall(r"!\[[^\]]*\]\(([^)]+)\)", (reports / "summary.md").read_text())
    assert len(linked) == len(sources)
    for name in linked:
        decodes_as_png((reports / name).read_bytes())


def test_the_markdown_twin_has_the_same_tables(built):
    _, _, reports = built
    html_tables = [t for t in page((reports / "index.html").read_text()).tables]
    assert markdown_tables((reports / "summary.md").read_text()) == html_tables


def find_row(tables: list, first: str) -> list[str]:
    return next(row for table in tables for row in table if row and row[0] == first)


def test_numbers_in_the_page_equal_the_metrics(built):
    _, metrics, reports = built
    html = (reports / "index.html").read_text()
    tables = page(html).tables
    arms, header = metrics["classifier"]["arms"], None
    for table in tables:
        if table[0][:2] == ["arm", "AUC (macro, one-vs-rest)"]:
            header = table[0]
    assert header is not None
    for arm, result in arms.items():
        row = find_row(tables, f"{arm} (3 seeds)")
        assert row[1] == interval(result["seed_mean"]["auc_ovr_macro"])
        assert row[2] == interval(result["seed_mean"]["auc_malignant"])
        assert row[header.index("ECE (lower is better)")] == interval(result["seed_mean"]["ece"])
    difference = metrics["classifier"]["differences"]["real+synthetic - real"]
    assert find_row(tables, "real+synthetic - real")[1] == difference_cell(difference["auc_ovr_macro"])
    assert "±" in find_row(tables, "real+synthetic - real")[1]  # the between-seed spread
    sentence = re.search(r"Adding synthetic images to the real ones changed test AUC \(macro, one-vs-rest\) "
                         r"by (\S+ \[[^\]]+\]) \(mean over seeds; p (=|&lt;) [0-9.]+, t over seeds and "
                         r"images\): ([a-z ]+)\.", html)
    assert sentence and sentence.group(1) == interval(difference["auc_ovr_macro"], sign=True)
    assert "malignant vs rest by" not in html  # one headline metric for every verdict
    realism = metrics["synthetic"]["realism"]
    assert find_row(tables, "FID")[1:] == [num(realism["overall"]["fid"]),
                                          num(realism["reference_real_val"]["overall"]["fid"])]
    ceiling = metrics["synthetic"]["control_fidelity"]["reference_real_val"]["edge_f1"]
    label = "edge F1: real validation images, own controls (shuffled across the set)"
    assert find_row(tables, label)[1:] == [num(ceiling["matched"]), num(ceiling["shuffled"]),
                                           num(ceiling["ratio"], 2) + "x"]
    best = num(metrics["tune"]["best_val_auc"])
    assert find_row(tables, "validation macro AUC (best of the trials)")[1] == best
    counts = metrics["ingest"]["counts"]
    expected = [str(counts.get(f"{s}/benign", 0)) for s in ("train", "val", "test")]
    assert find_row(tables, "benign")[1:4] == expected
    assert "Data-quality gate PASSED: 2 of 2 expectations met on 18 images." in html
    assert find_row(tables, "bad_input")[1] == "1"
    assert find_row(tables, "scans/broken | 7.png")[1] == "cannot decode: truncated"


def test_provenance_links_every_stage_run_and_the_report_run_keeps_the_page(built):
    config, _, reports = built
    html = (reports / "index.html").read_text()
    client = MlflowClient(tracking_uri(Path(config.paths.mlruns)))
    runs = {run.data.tags["stage"]: run for run in client.search_runs(
        [client.get_experiment_by_name("controlbreast").experiment_id])}
    assert set(runs) == {"ingest", "evaluate", "report"}
    links = page(html).links
    for run in runs.values():
        assert f"http://127.0.0.1:5000/#/experiments/{run.info.experiment_id}/runs/{run.info.run_id}" \
               "?workflowType=machine_learning" in links
    artifacts = [a.path for a in client.list_artifacts(runs["report"].info.run_id, "report")]
    assert artifacts == ["report/index.html", "report/summary.md"]
    assert [find_row(page(html).tables, stage)[2] for stage in ("ingest", "evaluate", "report")] == [
        "FINISHED", "FINISHED", "writing this page"]  # the page's own run is not "RUNNING"
    assert "0123456789abcdef0123456789abcdef.dir" in html  # the data hash from dvc.lock
    assert "Git commit unknown" in html


def test_training_curves_are_written_for_dvc_plots(built):
    _, _, reports = built
    lines = (reports / "classifier" / "training.csv").read_text().splitlines()
    assert lines[0] == "arm,seed,epoch,train_loss,lr,val_auc"
    assert len(lines) == 1 + 3 * 3  # three arms, one seed, three epochs


def notes(report) -> list[str]:
    return [b.text for s in report.sections for b in s.blocks if getattr(b, "note", False)]


def test_absent_optional_inputs_leave_one_line_each(built):
    config, _, _ = built
    inputs = collect(config)
    empty = dataclasses.replace(inputs, metrics={**inputs.metrics, "tune": None, "synthetic": None},
                                tune_pictures={}, synthetic_pictures={})
    report = build_report(config, empty, None, None, [])
    said = notes(report)
    assert any("No tuning" in line for line in said)
    assert any("metrics/synthetic.json absent" in line for line in said)
    assert any("Data-efficiency curve: not measured" in line for line in said)
    assert any("External test sets: none evaluated" in line for line in said)
    assert not [p for p in report.pictures() if p.name.startswith(("tune-", "synthetic-"))]


def test_data_efficiency_and_external_results_are_shown_when_present(built):
    config, metrics, _ = built
    inputs = collect(config)
    mean = metrics["classifier"]["arms"]["real"]["seed_mean"]
    value = {name: mean[name] for name in ("auc_ovr_macro", "auc_malignant")}
    gain = metrics["classifier"]["differences"]["real+synthetic - real"]
    efficiency = {f"{f:g}": {"real_images": n, "real": value, "real+synthetic": value,
                             "real+synthetic - real": gain}
                  for f, n in ((0.25, 10), (0.5, 20), (1.0, 40))}
    external = {"busi-b": {"images": 60, "excluded_near_duplicates": 2, **{
        key: metrics["classifier"][key] for key in ("arms", "differences")}},
        "one-class": {"images": 5, "excluded_near_duplicates": 0, "classes_present": ["malignant"],
                      "images_per_class": {"normal": 0, "benign": 0, "malignant": 5},
                      "arms": metrics["classifier"]["arms"],  # no difference is defined on one class
                      "differences": {"real+synthetic - real": {"auc_malignant": {"estimate": None},
                                                                "auc_ovr_macro": {"estimate": None}}}}}
    classifier = {**metrics["classifier"], "data_efficiency": efficiency, "external": external}
    inputs = dataclasses.replace(inputs, metrics={**inputs.metrics, "classifier": classifier})
    report = build_report(config, inputs, None, None, [])
    names = [p.name for p in report.pictures()]
    assert "data-efficiency.png" in names
    decodes_as_png(next(p.png for p in report.pictures() if p.name == "data-efficiency.png"))
    captions = [t.caption for t in report.tables()]
    assert "Arms on external set busi-b: mean over the seeds, 95% interval over seeds and test images" \
        in captions
    table = next(t for t in report.tables() if t.caption.startswith("Data efficiency"))
    assert [row[:2] for row in table.rows] == [("0.25", "10"), ("0.5", "20"), ("1", "40")]
    assert not any(line.startswith(("Data-efficiency", "External")) for line in notes(report))
    glance = [b.text for b in report.sections[0].blocks]
    assert glance[1].startswith("External set busi-b: adding synthetic images to the real ones")
    assert glance[2] == ("External set one-class: real+synthetic - real cannot be measured there (AUC "
                         "(macro, one-vs-rest) is undefined on its classes: malignant).")
    assert "No ROC on external set one-class: it lacks the positive class or every other class (or " \
           "roc_external.csv is absent)." in notes(report)


def test_importances_from_too_few_trials_are_said_not_drawn(built):
    config, metrics, _ = built
    inputs = collect(config)
    drawn = [p.name for p in build_report(config, inputs, None, None, []).pictures()]
    assert "tune-importances.png" in drawn  # 10 complete trials
    few = {**metrics["tune"], "trials": {"complete": 4, "pruned": 2, "fail": 0}}
    inputs = dataclasses.replace(inputs, metrics={**inputs.metrics, "tune": few})
    report = build_report(config, inputs, None, None, [])
    assert "tune-importances.png" not in [p.name for p in report.pictures()]
    said = notes(report)
    assert any(line.startswith("Parameter importances not drawn: 4 complete trials") for line in said)


def test_separability_shows_the_discriminators_auc_overall_and_per_class():
    from controlbreast.report.data_sections import separability_blocks

    # evaluation/separability.py's shape
    benign = {"estimate": 0.9, "low": 0.8, "high": 0.97, "real": 12, "synthetic": 20}
    measured = {"overall": {"estimate": 0.67, "low": 0.58, "high": 0.75, "real": 40, "synthetic": 60},
                "per_class": {"benign": benign}, "epochs": 5, "trained_on": {"real": 100, "synthetic": 60}}
    [table] = separability_blocks({"separability": measured})
    assert table.rows == (("all classes", "0.670 [0.580, 0.750]", "40", "60"),
                          ("benign", "0.900 [0.800, 0.970]", "12", "20"))
    [note] = separability_blocks({})
    assert "not measured" in note.text


def test_the_provenance_table_shows_external_paths_as_mlflow_does(tmp_path, monkeypatch):
    from builders import hospital_external, make_config
    from controlbreast.report.markdown import block_markdown
    from controlbreast.report.provenance import provenance_section

    (tmp_path / "repo").mkdir()
    monkeypatch.chdir(tmp_path / "repo")  # not a git work tree: the repository is the working folder
    config = make_config(tmp_path / "repo", evaluate=hospital_external(tmp_path))
    section = provenance_section(config, {}, None, None, [])
    text = "\n".join(block_markdown(block, "") for block in section.blocks)
    assert "patient-jane-doe#" in text and "st-mary-site" not in text
