"""The README's results table: rendered from a headline summary, written between its markers, and
naming the commit its metrics come from (refused while they are uncommitted)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from commands import run
from controlbreast.cli import app
from controlbreast.errors import ControlBreastError
from controlbreast.readme import (
    BEGIN,
    END,
    readme_block,
    replace_block,
    results_table,
    update_results,
    verdict,
)

CONTROL = {"estimate": 0.03, "low": 0.005, "high": 0.06}
RECIPES = {"real+synthetic": {"0.25": {"real_images": 10, "generator_images": 40,
                                       "test": {"estimate": -0.02, "low": -0.06, "high": 0.02}},
                              "1": {"real_images": 40, "generator_images": 40,
                                    "test": {"estimate": 0.05, "low": 0.01, "high": 0.09, "seed_sd": 0.02,
                                             "vs_control": {"estimate": 0.01, "low": -0.03, "high": 0.04}},
                                    "site-b": {"estimate": -0.1, "low": -0.2, "high": -0.01}}},
           "real-repeat": {"1": {"real_images": 40, "generator_images": 40, "test": {**CONTROL}}}}
SUMMARY = {"recipes": RECIPES, "same_count_control": "real-repeat", "test_images": 40,
           "auc": {"real": 0.9, "real+synthetic": 0.95},
           "difference": {"real+synthetic - real": {"estimate": 0.05, "low": 0.01, "high": 0.09},
                          "synthetic - real": {"estimate": -0.2, "low": -0.3, "high": -0.1, "seed_sd": 0.04}},
           "external": {"site-b": {"images": 30, "auc": {"real": 0.8},
                                   "real+synthetic - real": {"estimate": -0.1, "low": -0.2, "high": -0.01}}}}


@pytest.mark.parametrize("low, high, said", [(-0.2, -0.01, "hurts"),
                                             (-0.01, 0.01, "no measurable difference"),
                                             (0.0, 0.0, "identical to real")])  # nothing drawn
def test_a_difference_hurts_or_is_unmeasurable_by_its_interval_alone(low, high, said):
    assert verdict({"estimate": (low + high) / 2, "low": low, "high": high}) == said


@pytest.mark.parametrize("against, said", [({"estimate": 0.04, "low": 0.01, "high": 0.07}, "helps"),
                                           ({"estimate": 0.0, "low": -0.03, "high": 0.03},
                                            "no better than repeating the real images"),
                                           (None, "helps over real (no same-count control measured)")])
def test_a_gain_over_real_helps_only_when_it_also_beats_the_same_count_control(against, said):
    cell = {"estimate": 0.05, "low": 0.01, "high": 0.09, **({"vs_control": against} if against else {})}
    assert verdict(cell) == said
    assert verdict({**cell, "vs_control": {"estimate": 0, "low": -1, "high": 1}}, control=True) == "helps"


def test_the_table_has_every_arm_and_difference_of_the_summary():
    table = results_table(SUMMARY, "0123456789")
    assert table.startswith(BEGIN) and table.endswith(END)
    assert "| real | 0.900 | 0.800 |" in table  # internal test split, then the external set
    assert "| real+synthetic | 0.950 | n/a |" in table  # an arm the external set did not test
    assert table.index("recipe − real, test split") < table.index("| arm |")  # the answer first
    assert "| recipe − real, test split | 10 real images (0.25) | 40 real images (1) |" in table
    assert ("| real+synthetic | −0.020 [−0.060, +0.020] no measurable difference | +0.050 [+0.010, +0.090] "
            "no better than repeating the real images |") in table
    assert "| real-repeat (same-count control) | n/a | +0.030 [+0.005, +0.060] helps |" in table
    assert "| recipe − real, external set site-b |" in table
    assert "generator trained on 40 labelled real images" in table
    assert "| synthetic − real, test split | −0.200 [−0.300, −0.100] | ±0.040 | hurts |" in table
    assert "real+synthetic − real, test split" not in table  # the recipe table's verdict is the one
    assert "at commit `0123456789`" in table


def test_a_readme_without_markers_is_refused_with_what_to_add():
    with pytest.raises(ControlBreastError, match="lacks the results markers"):
        replace_block("# A README\n", results_table(SUMMARY, "0123456789"))


def committed_project(root: Path, readme: str) -> None:
    """A git repository with a committed ``metrics/summary.json`` and ``README.md``."""
    run("git", "init", "-q", cwd=root)
    run("git", "config", "user.email", "ci@example.org", cwd=root)
    run("git", "config", "user.name", "CI", cwd=root)
    (root / "metrics").mkdir()
    (root / "metrics" / "summary.json").write_text(json.dumps(SUMMARY))
    (root / "README.md").write_text(readme)
    run("git", "add", "-A", cwd=root)
    run("git", "commit", "-qm", "results", cwd=root)


def test_the_table_names_the_commit_of_its_metrics_and_refuses_uncommitted_ones(tmp_path: Path):
    committed_project(tmp_path, f"# Project\n\n{BEGIN}\n{END}\n\nThe rest stays.\n")
    commit = run("git", "rev-parse", "HEAD", cwd=tmp_path).strip()[:10]
    assert update_results(tmp_path, ("README.md",)) == ["README.md"]
    text = (tmp_path / "README.md").read_text()
    assert readme_block(text) == results_table(SUMMARY, commit) and text.endswith("The rest stays.\n")
    assert update_results(tmp_path, ("README.md",)) == []  # already up to date: nothing rewritten
    (tmp_path / "metrics" / "summary.json").write_text(json.dumps({**SUMMARY, "test_images": 41}))
    with pytest.raises(ControlBreastError, match="uncommitted changes"):
        update_results(tmp_path, ("README.md",))
    assert (tmp_path / "README.md").read_text() == text  # refused: the README is left as it was


def test_the_command_rewrites_the_readme_or_says_in_one_line_why_not(tmp_path: Path, monkeypatch):
    committed_project(tmp_path, "# A README without markers\n")
    monkeypatch.chdir(tmp_path)
    refused = CliRunner().invoke(app, ["readme-results", "--file", "README.md"])
    assert refused.exit_code == 1 and "lacks the results markers" in refused.output
    assert "Traceback" not in refused.output
    (tmp_path / "README.md").write_text(f"{BEGIN}\n{END}\n")
    done = CliRunner().invoke(app, ["readme-results", "--file", "README.md"])
    assert done.exit_code == 0 and "rewritten in README.md" in done.output
    assert "| real | 0.900 | 0.800 |" in (tmp_path / "README.md").read_text()
