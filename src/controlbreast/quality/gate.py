"""The data-quality gate: a great-expectations suite over the manifest and per-image statistics.

A data set that is wrong in a quiet way (a duplicate across train and test, a blank frame, masks
that do not fit their images, a class missing from a split) makes every later number a lie, so the
pipeline stops here before training. Each ``Check`` is one GX expectation on one table, with a
readable name and the params key that relaxes it when it is a threshold. Tables:

- ``manifest``: the manifest as read from CSV (columns and types),
- ``images``: the manifest joined with ``stats.image_table`` (one row per image),
- ``splits``: one row per split (fraction vs target), ``classes``: one row per split × class.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import great_expectations as gx
import pandas as pd
from great_expectations.expectations.row_conditions import Column

from controlbreast.config import Config
from controlbreast.data.manifest import PreparedRow
from controlbreast.data.splits import SPLITS

E = gx.expectations




@dataclass(frozen=True)
class Check:
    """One expectation on one table; ``relax`` names the params key of its threshold, if any."""

    name: str
    table: str
    expectation: Any
    relax: str | None = None


NOT_MAMMOGRAM = Column("modality") != "mammography"


def _is(column: str, value: bool) -> Any:
    return Column(column) == value


def black_checks(config: Config, by_modality: bool) -> list[Check]:
    """Mostly-black images: a failure for ultrasound, but expected of a mammogram (the film is
    mostly background), which has its own, looser bound (only an all-black film fails)."""
    q = config.quality
    if not by_modality:
        return [Check("images are not mostly black", "images",
                      E.ExpectColumnValuesToBeBetween(column="black_fraction",
                                                      max_value=q.max_black_fraction),
                      "quality.max_black_fraction")]
    return [
        Check("images are not mostly black", "images",
              E.ExpectColumnValuesToBeBetween(column="black_fraction", max_value=q.max_black_fraction,
                                              row_condition=NOT_MAMMOGRAM),
              "quality.max_black_fraction"),
        Check("mammograms show some tissue", "images",
              E.ExpectColumnValuesToBeBetween(column="black_fraction",
                                              max_value=q.mammography_max_black_fraction,
                                              row_condition=_is("is_mammogram", True)),
              "quality.mammography_max_black_fraction"),
    ]


def blank_checks(config: Config, by_modality: bool, mammograms: bool) -> list[Check]:
    """Blank images: a mammogram patch of fatty tissue is smooth (real 0.2 mm/px patches fall below
    ``min_std``), so mammograms have their own bound, checked where the table holds any."""
    q = config.quality
    name, key = "images are not blank", "quality.min_std"
    if not by_modality:
        return [Check(name, "images", E.ExpectColumnValuesToBeBetween(column="std_intensity",
                                                                       min_value=q.min_std), key)]
    checks = [Check(name, "images", E.ExpectColumnValuesToBeBetween(
        column="std_intensity", min_value=q.min_std, row_condition=NOT_MAMMOGRAM), key)]
    if mammograms:
        checks.append(Check("mammograms are not blank", "images", E.ExpectColumnValuesToBeBetween(
            column="std_intensity", min_value=q.mammography_min_std, row_condition=_is("is_mammogram", True)),
            "quality.mammography_min_std"))
    return checks


def coverage_checks(config: Config, mammograms: bool) -> list[Check]:
    """Lesion masks non-empty and plausibly sized; a lesion patch of a mass larger than the patch
    lies inside it, so a mammogram's mask may cover it all (``mammography_max_mask_coverage``)."""
    q, lesion = config.quality, _is("is_lesion", True)
    checks = [Check("lesion masks are non-empty with plausible coverage", "images",
                    E.ExpectColumnValuesToBeBetween(column="mask_coverage", min_value=q.min_mask_coverage,
                                                    max_value=q.max_mask_coverage,
                                                    row_condition=lesion & NOT_MAMMOGRAM),
                    "quality.min_mask_coverage / quality.max_mask_coverage")]
    if mammograms:
        checks.append(Check("mammogram lesion masks are non-empty", "images", E.ExpectColumnValuesToBeBetween(
            column="mask_coverage", min_value=q.min_mask_coverage, max_value=q.mammography_max_mask_coverage,
            row_condition=lesion & _is("is_mammogram", True)),
            "quality.min_mask_coverage / quality.mammography_max_mask_coverage"))
    return checks


def record_checks(config: Config, by_modality: bool = False, mammograms: bool = False) -> list[Check]:
    """Checks shared by real and synthetic images: files, labels, size, mode, exposure, copies.
    ``by_modality``: the table has a ``modality`` column (see ``black_checks``); ``mammograms``:
    some of its rows are mammograms (their own bounds are checked then)."""
    q, size = config.quality, config.data.image_size
    return [
        Check("ids are unique", "images", E.ExpectColumnValuesToBeUnique(column="id")),
        Check("every file is present and readable", "images",
              E.ExpectColumnValuesToBeInSet(column="readable", value_set=[True])),
        Check("labels are in the configured classes", "images",
              E.ExpectColumnValuesToBeInSet(column="label", value_set=list(config.data.classes))),
        Check("images have the configured height", "images",
              E.ExpectColumnValuesToBeInSet(column="height", value_set=[size]), "data.image_size"),
        Check("images have the configured width", "images",
              E.ExpectColumnValuesToBeInSet(column="width", value_set=[size]), "data.image_size"),
        Check("images are 8-bit grayscale (mode L)", "images",
              E.ExpectColumnValuesToBeInSet(column="mode", value_set=["L"])),
        *blank_checks(config, by_modality, mammograms),
        *black_checks(config, by_modality),
        Check("images are not saturated", "images",
              E.ExpectColumnValuesToBeBetween(column="saturated_fraction",
                                              max_value=q.max_saturated_fraction),
              "quality.max_saturated_fraction"),
        Check("no exact duplicate images", "images",
              E.ExpectColumnValuesToBeUnique(column="pixel_sha256")),
    ]


def prepared_checks(config: Config, mammograms: bool = False) -> list[Check]:
    """All checks of the prepared (real) data set; ``mammograms``: it holds some."""
    q = config.quality
    manifest_types = [("orig_height", "int64"), ("orig_width", "int64"), ("bit_depth", "int64"),
                      ("has_mask", "bool"), ("flipped", "bool"), ("patch_top", "int64"),
                      ("patch_left", "int64"), ("patch_side", "int64"), ("crop_top", "int64"),
                      ("crop_left", "int64"), ("crop_height", "int64"), ("crop_width", "int64"),
                      ("pixel_spacing_mm", "float64")]
    return [
        Check("manifest has exactly the expected columns", "manifest",
              E.ExpectTableColumnsToMatchSet(column_set=list(PreparedRow.columns()), exact_match=True)),
        *[Check(f"manifest column {column} is {kind}", "manifest",
                E.ExpectColumnValuesToBeOfType(column=column, type_=kind))
          for column, kind in manifest_types],
        *record_checks(config, by_modality=True, mammograms=mammograms),
        Check("splits are train/val/test", "images",
              E.ExpectColumnValuesToBeInSet(column="split", value_set=list(SPLITS))),
        *coverage_checks(config, mammograms),
        *([Check("lesion images have a mask", "images",
                 E.ExpectColumnValuesToBeInSet(column="has_mask", value_set=[True],
                                               row_condition=_is("is_lesion", True)),
                 "data.require_lesion_masks")] if config.data.require_lesion_masks else []),
        Check("normal masks are empty", "images",
              E.ExpectColumnValuesToBeBetween(column="mask_coverage", max_value=0.0,
                                              row_condition=_is("is_lesion", False))),
        Check("masks are readable and the size of their image", "images",
              E.ExpectColumnValuesToBeInSet(column="mask_matches_image", value_set=[True],
                                            row_condition=_is("has_mask", True))),
        Check("every image has its controls, of its size", "images",
              E.ExpectColumnValuesToBeInSet(column="controls_match", value_set=[True])),
        Check("no near-duplicate across splits", "images",
              E.ExpectColumnValuesToBeNull(column="cross_split_twin"), "quality.near_duplicate_bits"),
        Check("every class is present in every split", "classes",
              E.ExpectColumnValuesToBeBetween(column="count", min_value=1)),
        Check("split fractions are near their targets", "splits",
              E.ExpectColumnValuesToBeBetween(column="deviation", max_value=q.split_tolerance),
              "quality.split_tolerance"),
    ]


def synthetic_checks(config: Config) -> list[Check]:
    """All checks of a synthetic set: the shared ones, and provenance from training controls."""
    return [
        *record_checks(config),
        Check("every synthetic image comes from a training-split control", "images",
              E.ExpectColumnValuesToBeInSet(column="control_split", value_set=["train"])),
    ]


def _outcome(check: Check, result: Any, max_ids: int) -> dict:
    details = result.result or {}
    column = getattr(check.expectation, "column", None)
    offending: dict[str, Any] = {}
    for item in details.get("unexpected_index_list") or []:
        if isinstance(item, dict) and len(offending) < max_ids:
            offending.setdefault(str(item["id"]), item.get(column))
    observed = details.get("observed_value", details.get("unexpected_count"))
    return {"expectation": check.name, "table": check.table, "passed": bool(result.success),
            "observed": json.loads(json.dumps(observed, default=str)),
            "unexpected_count": details.get("unexpected_count"), "column": column,
            "offending_ids": list(offending),
            "offending_values": json.loads(json.dumps(list(offending.values()), default=str)),
            "relax_with": check.relax}


def run_checks(tables: dict[str, pd.DataFrame], checks: list[Check], name: str,
               docs: Path | None, max_ids: int) -> list[dict]:
    """Validate each table with its checks in one ephemeral GX context; optional HTML data docs."""
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    if docs is not None:
        context.add_data_docs_site("local", {
            "class_name": "SiteBuilder", "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
            "store_backend": {"class_name": "TupleFilesystemStoreBackend",
                              "base_directory": str(Path(docs).resolve())}})
    source = context.data_sources.add_pandas(name)
    result_format = {"result_format": "COMPLETE", "unexpected_index_column_names": ["id"]}
    outcomes = []
    for table, frame in tables.items():
        mine = [c for c in checks if c.table == table]
        suite = context.suites.add(gx.ExpectationSuite(name=f"{name}-{table}"))
        for check in mine:
            suite.add_expectation(check.expectation)
        batch = source.add_dataframe_asset(table).add_batch_definition_whole_dataframe("all")
        definition = context.validation_definitions.add(
            gx.ValidationDefinition(name=f"{name}-{table}", data=batch, suite=suite))
        actions = [gx.checkpoint.UpdateDataDocsAction(name="docs")] if docs is not None else []
        checkpoint = context.checkpoints.add(gx.Checkpoint(
            name=f"{name}-{table}", validation_definitions=[definition], actions=actions,
            result_format=result_format))
        run = checkpoint.run(batch_parameters={"dataframe": frame})
        results = next(iter(run.run_results.values())).results
        by_id = {result.expectation_config.id: result for result in results}
        outcomes += [_outcome(check, by_id[check.expectation.id], max_ids) for check in mine]
    return outcomes


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def failure_summary(outcomes: list[dict], sources: Mapping[str, str] | None = None) -> str:
    """Short readable lines for the failed expectations (empty when all passed); an offending id
    found in ``sources`` (prepared id -> source file) is shown with the file the user must fix,
    ``img-000003 [benign/b12.png] (std=0)``."""
    lines, sources = [], sources or {}
    for outcome in (o for o in outcomes if not o["passed"]):
        ids = ", ".join(f"{i}{f' [{sources[i]}]' if i in sources else ''} ({outcome['column']}={_short(v)})"
                        for i, v in zip(outcome["offending_ids"], outcome["offending_values"], strict=True))
        more = (outcome["unexpected_count"] or 0) - len(outcome["offending_ids"])
        line = f"FAILED {outcome['expectation']}"
        if ids:
            line += f": {ids}" + (f" (+{more} more)" if more > 0 else "")
        elif outcome["observed"] is not None:
            line += f": observed {outcome['observed']}"
        if outcome["relax_with"]:
            line += f"  [threshold: {outcome['relax_with']}]"
        lines.append(line)
    return "\n".join(lines)
