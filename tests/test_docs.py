"""The README and the docs site: the site builds with ``mkdocs build --strict`` (a broken link or
anchor fails), the README stays a short guide whose every figure is a committed metric, and each
measured table in ``docs/results/`` names a commit and params digests that git confirms."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from controlbreast.readme import FILES, readme_block, results_table

REPO = Path(__file__).resolve().parents[1]
PROVENANCE = re.compile(r"commit `([0-9a-f]{7,40})` · params (.+?) · machine: \S")
PARAMS_FILE = re.compile(r"`([\w./-]+\.ya?ml)@([0-9a-f]{12})`")
COMMIT = re.compile(r"at commit `([0-9a-f]{7,40})`")


def build(config: Path, site: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    return subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "-f", str(config),
                           "-d", str(site)], capture_output=True, text=True, env=env, timeout=120)


def git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True, timeout=30)


def readme_commit(text: str) -> str:
    """The commit the README's results block names."""
    found = COMMIT.search(readme_block(text))
    assert found, "the README's results block names no commit"
    return found[1]


def needs_history() -> None:
    """Commits named in the docs are only checkable with the history (CI's test jobs clone shallow)."""
    shallow = git("rev-parse", "--is-shallow-repository")
    if shallow.returncode != 0 or shallow.stdout.strip() == b"true":
        pytest.skip("not a full git clone: the named commits are not here to compare")


def test_the_docs_site_builds_strictly(tmp_path):
    built = build(REPO / "mkdocs.yml", tmp_path / "site")
    assert built.returncode == 0, built.stdout + built.stderr
    assert "WARNING" not in built.stderr, built.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "results" / "default-pipeline" / "index.html").is_file()


def test_a_broken_link_fails_the_build(tmp_path):
    shutil.copytree(REPO / "docs", tmp_path / "docs")
    shutil.copy(REPO / "mkdocs.yml", tmp_path / "mkdocs.yml")
    page = tmp_path / "docs" / "benchmarks.md"
    page.write_text(page.read_text() + "\nSee [the old section](results/speed.md#no-such-section).\n")
    built = build(tmp_path / "mkdocs.yml", tmp_path / "site")
    assert built.returncode != 0 and "no-such-section" in built.stdout + built.stderr


def test_the_readme_is_a_guide_not_a_log():
    lines = (REPO / "README.md").read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines: move details to docs/"


DIARY = re.compile(r"\b(now|earlier|this session|not yet|no longer|used to)\b", re.IGNORECASE)


def test_docs_and_profiles_state_what_is_not_when_it_changed():
    """Pages and profiles say what holds (a result under its provenance line), not the project's
    history ("the default now", "earlier settings", "not yet run in this session")."""
    pages = [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md")),
             *sorted((REPO / "profiles").glob("*"))]
    found = [f"{page.relative_to(REPO)}:{number}: {line.strip()[:90]}" for page in pages
             for number, line in enumerate(page.read_text().splitlines(), start=1)
             if DIARY.search(line) and "**Provenance:**" not in line]
    assert found == []


@pytest.mark.parametrize("name", FILES)
def test_the_results_table_is_the_one_rendered_from_the_committed_summary(name):
    text = (REPO / name).read_text()
    summary = json.loads((REPO / "metrics" / "summary.json").read_text())
    assert readme_block(text) == results_table(summary, readme_commit(text)), (
        f"{name}'s results table differs from metrics/summary.json: run `controlbreast readme-results`")


def test_the_commit_the_table_names_holds_these_metrics():
    needs_history()
    commit = readme_commit((REPO / "README.md").read_text())
    shown = git("show", f"{commit}:metrics/summary.json")
    assert shown.returncode == 0, f"README.md names commit {commit}, which has no metrics/summary.json"
    assert shown.stdout.decode() == (REPO / "metrics" / "summary.json").read_text(), (
        f"metrics/summary.json changed since {commit}: commit it, then run `controlbreast readme-results`")


def prose(text: str) -> str:
    """The README without its generated block, code, links' targets and DOIs: what a person typed."""
    text = text.replace(readme_block(text), "")
    text = re.sub(r"```.*?```", "", text, flags=re.S)
    text = re.sub(r"`[^`]*`", "", text)
    text = re.sub(r"\]\([^)]*\)", "]", text)
    return re.sub(r"(doi:|https?://)\S+", "", text)


def metric_values(value) -> list[float]:
    if isinstance(value, dict):
        return [v for item in value.values() for v in metric_values(item)]
    if isinstance(value, list):
        return [v for item in value for v in metric_values(item)]
    return [float(value)] if isinstance(value, int | float) and not isinstance(value, bool) else []


def test_every_figure_the_readme_quotes_is_a_committed_metric():
    values = [v for path in (REPO / "metrics").glob("*.json")
              for v in metric_values(json.loads(path.read_text()))]
    typed = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose((REPO / "README.md").read_text()))
    unknown = [figure for figure in typed
               if not any(f"{v:.{len(figure.split('.')[1])}f}" == figure for v in values)]
    assert not unknown, (f"README.md quotes {unknown}, found in no metrics/*.json: "
                         "generate it or move it to docs/")


def test_the_figure_check_sees_a_typed_figure():
    text = (REPO / "README.md").read_text() + "\nThe FID is 6.76 and the AUC 0.123456 (not a metric).\n"
    typed = re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose(text))
    assert typed[-2:] == ["6.76", "0.123456"]


def provenance_lines() -> list[tuple[str, str, str]]:
    """``(page, commit, params)`` of every provenance line in docs/results/."""
    return [(page.name, *found.groups()) for page in sorted((REPO / "docs" / "results").glob("*.md"))
            for found in PROVENANCE.finditer(page.read_text())]


def test_every_measured_table_carries_its_provenance():
    for page in sorted((REPO / "docs" / "results").glob("*.md")):
        sections = re.split(r"^#+ ", page.read_text(), flags=re.M)
        for section in sections:
            if re.search(r"^\|---", section, flags=re.M):
                assert PROVENANCE.search(section), (
                    f"docs/results/{page.name}: a table under '{section.splitlines()[0]}' has no "
                    "provenance line (commit, params digest, machine)")


def test_each_provenance_digest_is_the_params_file_at_its_commit():
    needs_history()
    lines = provenance_lines()
    assert len(lines) >= 10
    for page, commit, params in lines:
        files = PARAMS_FILE.findall(params)
        assert files, f"docs/results/{page}: commit {commit} names no params file@digest"
        for path, digest in files:
            shown = git("show", f"{commit}:{path}")
            assert shown.returncode == 0, f"docs/results/{page}: {path} is not in commit {commit}"
            assert hashlib.sha256(shown.stdout).hexdigest()[:12] == digest, (
                f"docs/results/{page}: {path} at {commit} does not have digest {digest}")


def checklists() -> dict[str, dict]:
    """docs/own-data.md's checklists: each ``## kind`` section's YAML block, by kind."""
    import yaml

    text = (REPO / "docs" / "own-data.md").read_text()
    found = {}
    for section in re.split(r"^## ", text, flags=re.MULTILINE)[1:]:
        title, _, body = section.partition("\n")
        block = re.search(r"```yaml\n(.*?)```", body, flags=re.DOTALL)
        if "- [ ]" in body and block:
            found[title] = yaml.safe_load(block.group(1))
    return found


def tiny_example(kind: str, root: Path) -> dict:
    """A tiny data set of ``kind`` on disk; the ``data`` keys that locate it."""
    from builders import write_busi, write_csv_ultrasound, write_dicom_films, write_png_films

    if kind == "BUSI folder":
        return {"root": str(write_busi(root / "busi"))}
    if kind.startswith("CSV ultrasound"):
        return write_csv_ultrasound(root / "us", masks=kind.endswith("with masks"))
    if kind.startswith("PNG"):
        films = write_png_films(root, count=12)
    else:
        films = write_dicom_films(root / "films", count=12)
    return {key: films[key] for key in ("root", "manifest", "image_size", "classes")}


@pytest.mark.parametrize("kind", ["BUSI folder", "CSV ultrasound with masks", "CSV ultrasound without masks",
                                  "PNG mammograms with a pixel spacing", "DICOM mammograms"])
def test_each_own_data_checklist_passes_check_and_ingest_on_a_tiny_example(tmp_path, kind, monkeypatch):
    """The keys a checklist gives, pointed at a tiny example of its kind: `check` finds nothing
    (its splits, quotas and external sets too) and ingest prepares every image."""
    from builders import make_config
    from controlbreast.data.check import preflight
    from controlbreast.data.ingest import run_ingest

    monkeypatch.setenv("CONTROLBREAST_GROUP_SECRET", "test-secret")
    sections = checklists()[kind]
    sections["data"] |= tiny_example(kind, tmp_path)
    config = make_config(tmp_path, **sections)
    assert preflight(config).problems == []
    result = run_ingest(config)
    assert result.rows and not result.rejected
    modality = "mammography" if "mammograms" in kind else "ultrasound"
    assert {row["modality"] for row in result.rows} == {modality}


# A cross-reference is a path from the repository root to a README or docs page, with an optional
# anchor (`docs/pipeline/classifiers.md#how-a-difference-is-judged`), in any tracked text file; the
# README's own links are relative to it. A name without a path ("README, Recipes") cannot be checked.
REFERENCE = re.compile(r"(?<![\w./-])((?:README|docs/[\w./-]+?)\.md)(?:#([\w-]+))?")
README_LINK = re.compile(r"\]\(((?!https?:)[^)#\s]*)(?:#([\w-]+))?\)")
VAGUE = re.compile(r'README(?!\.md)(?:,? ["“]|\)|, [A-Z])|\(README, \w+\)')
TEXT_FILES = (".py", ".yaml", ".yml", ".md", ".toml", ".cfg", ".sh", ".txt")


def slug(heading: str) -> str:
    """A heading's anchor as the docs site (Python-Markdown's toc) and GitHub make it."""
    text = re.sub(r"[^\w\s-]", "", heading).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def anchors(page: Path) -> set[str]:
    """Every heading's anchor on a Markdown page (fenced code skipped; ``{#id}`` honoured)."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6}\s+(.*?)\s*$", line)):
            explicit = re.search(r"\{#([\w-]+)\}\s*$", heading.group(1))
            found.add(explicit.group(1) if explicit else slug(heading.group(1)))
    return found


def tracked_text() -> list[Path]:
    names = git("ls-files").stdout.decode().splitlines()
    return [REPO / name for name in names if name != "tests/test_docs.py"
            and (name.endswith(TEXT_FILES) or Path(name).name in ("Makefile", "run"))]


def dangling(source: Path, target: Path, anchor: str | None) -> str | None:
    if not target.is_file():
        return f"{source.relative_to(REPO)}: {target.relative_to(REPO)} does not exist"
    if anchor and anchor not in anchors(target):
        return f"{source.relative_to(REPO)}: {target.relative_to(REPO)} has no section #{anchor}"
    return None


def test_every_cross_reference_resolves_to_a_page_and_section():
    problems = []
    for path in tracked_text():
        if not path.is_file():
            continue
        text = path.read_text(errors="replace")
        for match in REFERENCE.finditer(text):
            problems.append(dangling(path, (REPO / match.group(1)).resolve(), match.group(2)))
        if path.suffix in (".py", ".yaml", ".yml", ".toml") or path.name in ("Makefile", "run"):
            problems += [f"{path.relative_to(REPO)}: {match.group(0)!r} names no page (write README.md#part)"
                         for match in VAGUE.finditer(text)]
    readme = REPO / "README.md"
    for match in README_LINK.finditer(readme.read_text()):
        target = (REPO / match.group(1)).resolve() if match.group(1) else readme
        problems.append(dangling(readme, target, match.group(2)) if target.suffix == ".md" else None)
    assert [p for p in problems if p] == []


def test_a_dangling_anchor_is_caught():
    page = REPO / "docs" / "pipeline" / "classifiers.md"
    assert dangling(REPO / "params.yaml", page, "how-a-difference-is-judged") is None
    assert "no section #no-such-part" in dangling(REPO / "params.yaml", page, "no-such-part")
    assert slug("Data and model storage (DVC remote)") == "data-and-model-storage-dvc-remote"
    assert VAGUE.search('tune:  # Optuna (README "Tuning")') and VAGUE.search("(README, Recipes)")
    assert not VAGUE.search("see README.md#recipes") and not VAGUE.search("the README, the report")


PACKAGE = REPO / "src" / "controlbreast"
LAYOUT_ENTRY = re.compile(r"^(  |    )(\w+(?:\.py|/))(?:\s|$)")


def layout_modules(page: str) -> list[str]:
    """The modules ``docs/layout.md`` names under ``src/controlbreast/``, as paths inside the package
    (``data/``, ``data/ingest.py``): a package's members are indented under it."""
    lines = page.split("src/controlbreast/\n", 1)[1].splitlines()
    named, package = [], ""
    for line in lines:
        if line and not line.startswith(" "):
            break
        if entry := LAYOUT_ENTRY.match(line):
            nested, name = len(entry[1]) == 4, entry[2]
            package = package if nested else (name if name.endswith("/") else "")
            named.append(package + name if nested else name)
    return named


def package_modules() -> set[str]:
    """Every package (``data/``) and module (``data/ingest.py``) of the source tree; a package's
    ``__init__.py`` is the package's own line."""
    found = {p.relative_to(PACKAGE).as_posix() for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts}
    packages = {name.removesuffix("__init__.py") for name in found if name.endswith("/__init__.py")}
    return {name for name in found if not name.endswith("/__init__.py")} | packages


def test_the_layout_page_lists_every_module_and_only_those():
    named = layout_modules((REPO / "docs" / "layout.md").read_text())
    assert len(named) == len(set(named)), "a module is listed twice"
    modules = package_modules()
    assert sorted(modules - set(named)) == [], "modules missing from docs/layout.md"
    assert sorted(set(named) - modules) == [], "docs/layout.md names modules that do not exist"


def test_the_layout_check_reads_nesting_and_sees_a_stale_entry():
    page = ("src/controlbreast/\n  cli.py   x\n  data/    y\n    ingest.py  z\n                 wrapped\n"
            "  gone.py\nci/\n")
    assert layout_modules(page) == ["cli.py", "data/", "data/ingest.py", "gone.py"]
