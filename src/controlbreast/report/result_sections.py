"""The report's result parts: the answer at a glance, did the classifiers gain from synthetic
images (internal test split, then every external set), and the tuning."""

from __future__ import annotations

from controlbreast.evaluation.headline import PRIMARY, set_metric, travel
from controlbreast.evaluation.recipes import INTERNAL, direction
from controlbreast.evaluation.recipes import verdict as recipe_verdict
from controlbreast.report import figures
from controlbreast.report.document import Picture, ReportSection, Table, Text
from controlbreast.report.inputs import Inputs
from controlbreast.report.numbers import interval, num, p_value

NAMES = {"auc_ovr_macro": "AUC (macro, one-vs-rest)",
         "auc_ovr_macro_present": "AUC (macro over the classes present)",
         "balanced_accuracy": "balanced accuracy",
         "sensitivity": "sensitivity", "specificity": "specificity", "ece": "ECE (lower is better)"}
WORDING = {"real+synthetic - real": "Adding synthetic images to the real ones",
           "synthetic - real": "Training on synthetic images only instead of real ones"}


def metric_names(arms: dict) -> list[str]:
    """The interval metrics of the arms (means over seeds), in the order ``evaluate`` wrote them."""
    first = next(iter(arms.values()), {}).get("seed_mean", {})
    return [key for key, value in first.items() if isinstance(value, dict) and "estimate" in value]


def label(name: str) -> str:
    """A column heading: ``auc_malignant`` → ``AUC malignant vs rest``."""
    if name in NAMES:
        return NAMES[name]
    if name.startswith("image_auc_"):
        return f"film-level AUC {name.removeprefix('image_auc_')}"
    return f"AUC {name.removeprefix('auc_')} vs rest" if name.startswith("auc_") else name.replace("_", " ")


def positive_auc(names: list[str]) -> str | None:
    """The positive-class AUC's key (``auc_malignant``): the first class AUC ``evaluate`` wrote."""
    return next((n for n in names if n.startswith("auc_") and not n.startswith("auc_ovr_")), None)


def arms_tables(metrics: dict, where: str) -> list[Table]:
    """Arms × metrics (means over seeds, with intervals), then the paired differences with their
    between-seed spread and p-values."""
    arms = metrics.get("arms") or {}
    names = metric_names(arms)
    rows = tuple((f"{arm} ({seeds(result.get('seeds'))})",
                  *(interval(result["seed_mean"].get(n)) for n in names)) for arm, result in arms.items())
    tables = [Table(f"Arms on {where}: mean over the seeds, 95% interval over seeds and test images",
                    ("arm", *map(label, names)), rows)]
    differences = metrics.get("differences") or {}
    if differences:
        diff_rows = tuple((comparison, *(difference_cell(result.get(n)) for n in names))
                          for comparison, result in differences.items())
        tables.append(Table(f"Paired differences on {where}: seed by seed on the same test resamples; "
                            "± the between-seed spread; p from the t test over seeds and images",
                            ("difference", *map(label, names)), diff_rows))
    return tables


def seeds(count: int | None) -> str:
    """``1 seed`` / ``3 seeds``."""
    return f"{count} seed" if count == 1 else f"{count if count is not None else '?'} seeds"


def difference_cell(value: dict | None) -> str:
    """``+0.012 [−0.003, +0.032] ±0.008, p = 0.15`` (± the between-seed spread); ``undefined``
    where the metric is undefined on the set."""
    if not isinstance(value, dict) or value.get("estimate") is None:
        return "undefined"
    spread = "" if value.get("seed_sd") is None else f" ±{num(value['seed_sd'])}"
    return f"{interval(value, sign=True)}{spread}, {p_value(value.get('p_value'))}"


def verdict(metrics: dict, comparison: str, value: dict) -> str:
    """The one verdict of a difference: a recipe − real at fraction 1 is read with the same-count
    control (``recipes.verdict``); any other difference by the side of zero its interval lies on."""
    control = metrics.get("same_count_control")
    first, _, second = comparison.partition(" - ")
    cell = (((metrics.get("recipes") or {}).get(first) or {}).get("1") or {}).get(INTERNAL)
    if second == "real" and cell is not None:
        return recipe_verdict(cell, first == control)
    return direction(value)


def difference_sentences(metrics: dict) -> list[Text]:
    """The full-data paired differences against ``real`` or ``real-noaug``, on the headline metric
    (macro AUC), in words; the differences against the control live inside the recipe verdicts."""
    key = set_metric(metrics)
    sentences = []
    for comparison, result in (metrics.get("differences") or {}).items():
        value = result.get(key)
        if "@" in comparison or comparison.endswith(f" - {metrics.get('same_count_control')}"):
            continue
        if isinstance(value, dict) and value.get("estimate") is not None:
            subject = WORDING.get(comparison, comparison)
            sentences.append(Text(f"{subject} changed test {label(key)} by {interval(value, sign=True)} "
                                  f"(mean over seeds; {p_value(value.get('p_value'))}, t over seeds and "
                                  f"images): {verdict(metrics, comparison, value)}.", key=True))
    return sentences


def roc_picture(rows: list[dict], metrics: dict, name: str, where: str) -> Picture:
    """ROC of every arm of ``metrics`` on one plot, each named with its positive-class AUC."""
    key = positive_auc(metric_names(metrics.get("arms") or {}))
    shown = {row.get("arm") for row in rows}
    legend = {arm: f"{arm} (AUC {num((r['ensemble'].get(key) or {}).get('estimate'))})"
              for arm, r in (metrics.get("arms") or {}).items() if key and arm in shown}
    return Picture(name, figures.arm_curves(
        rows, "fpr", "tpr", f"ROC, {(key or 'auc_positive').removeprefix('auc_')} vs rest ({where})",
        ("false-positive rate (0-1)", "true-positive rate (0-1)"), legend, "chance"),
        f"ROC of the {len(legend)} full-data arms on {where} (each arm's seed-averaged model; the "
        "fraction and recipe arms are in the tables); dashed: chance.")


def curve_pictures(inputs: Inputs) -> list[Picture]:
    """Calibration and training curves."""
    pictures = []
    if inputs.calibration:
        pictures.append(Picture("calibration.png", figures.arm_curves(
            inputs.calibration, "confidence", "accuracy", "Calibration, top label (test)",
            ("predicted confidence (0-1)", "observed accuracy (0-1)"), {}, "perfect calibration"),
            "Reliability: points below the dashed line are over-confident."))
    if inputs.training:
        pictures.append(Picture("training.png", figures.training_curves(inputs.training),
                                "Training curves per arm and seed (the kept model: best validation AUC)."))
    return pictures


def efficiency_blocks(metrics: dict) -> list:
    """The data-efficiency curve and its table, when ``evaluate`` measured it."""
    table = metrics.get("data_efficiency")
    if not isinstance(table, dict) or not table:
        return [Text("Data-efficiency curve: not measured (no data_efficiency in metrics/classifier.json).",
                     note=True)]
    rows = tuple((fraction, num(entry.get("real_images")),
                  *(interval((entry.get(arm) or {}).get("auc_ovr_macro"), sign=arm.endswith("- real"))
                    for arm in ("real", "real+synthetic", "real+synthetic - real")))
                 for fraction, entry in table.items())
    return [Picture("data-efficiency.png", figures.data_efficiency(table, "auc_ovr_macro"),
                    "Test macro AUC against real training images: where do synthetic images help?"),
            Table("Data efficiency: test macro AUC by fraction of the real training split",
                  ("fraction", "real images", "real", "real+synthetic", "difference"), rows)]


def compared(metrics: dict, result: dict) -> tuple[str, str]:
    """The metric of the internal and of the external ``PRIMARY`` difference to set side by side:
    each set's macro AUC (over the classes present where one is absent), the one headline metric."""
    return set_metric(metrics), set_metric(result)


def travel_text(metrics: dict, name: str, result: dict) -> Text:
    """Did ``real+synthetic − real`` hold on external set ``name``? Its interval beside the internal one."""
    own, there = compared(metrics, result)
    inside = ((metrics.get("differences") or {}).get(PRIMARY) or {}).get(own)
    outside = ((result.get("differences") or {}).get(PRIMARY) or {}).get(there)
    present = result.get("classes_present") or []
    where = f"the macro AUC over {', '.join(present)}" if there == "auc_ovr_macro_present" else label(there)
    if not isinstance(outside, dict) or outside.get("estimate") is None:
        return Text(f"External set {name}: {PRIMARY} cannot be measured there ({where} is undefined on "
                    f"its classes: {', '.join(present) or 'none'}).", key=True)
    internal = "the internal test split" + (", the macro AUC over every class" if own != there else "")
    return Text(f"External set {name}: adding synthetic images to the real ones ({PRIMARY}) changed "
                f"{where} by {interval(outside, sign=True)} ({internal}: {interval(inside, sign=True)}): "
                f"{travel(inside, outside)}.", key=True)


def external_set_blocks(inputs: Inputs, metrics: dict, name: str, result: dict) -> list:
    """One external set: its size per class, whether the gain travelled, its tables and ROC."""
    counts = result.get("images_per_class") or {}
    per_class = "; ".join(f"{n} {c}" for c, n in counts.items())
    absent = [c for c, n in counts.items() if not n]
    blocks: list = [Text(f"External set {name}: {result.get('images', 'n/a')} images"
                         f"{f' ({per_class})' if per_class else ''}, "
                         f"{result.get('excluded_near_duplicates', 0)} near-duplicates of training images "
                         "excluded." + (f" No {', '.join(absent)} images: their AUC and the macro AUC over "
                                        "every class are undefined here; the macro AUC is taken over the "
                                        "classes present." if absent else "")),
                    travel_text(metrics, name, result), *arms_tables(result, f"external set {name}")]
    rows = [row for row in inputs.external_roc if row.get("set") == name]
    if rows:
        blocks.append(roc_picture(rows, result, f"roc-external-{name}.png", f"external set {name}"))
    else:
        blocks.append(Text(f"No ROC on external set {name}: it lacks the positive class or every other "
                           "class (or roc_external.csv is absent).", note=True))
    return blocks


def external_blocks(inputs: Inputs, metrics: dict) -> list:
    """Every external test set's size, verdict, arms, differences and ROC, when present."""
    external = metrics.get("external")
    if not isinstance(external, dict) or not external:
        return [Text("External test sets: none evaluated (no external in metrics/classifier.json).",
                     note=True)]
    return [block for name, result in external.items()
            for block in external_set_blocks(inputs, metrics, name, result)]


def classifier_section(inputs: Inputs) -> ReportSection:
    """The internal result (differences in words, arms × metrics, ROC), then every external set,
    then calibration and training curves and data efficiency."""
    metrics = inputs.metrics.get("classifier")
    if not metrics:
        return ReportSection("classifiers", "The classifiers",
                       [Text("No classifier metrics (metrics/classifier.json absent).", note=True)])
    blocks: list = [Text(f"{metrics.get('test_images', 'n/a')} test images, read by the evaluate stage "
                         "only.")]
    blocks += difference_sentences(metrics) + arms_tables(metrics, "the test split")
    if inputs.roc:
        blocks.append(roc_picture(inputs.roc, metrics, "roc.png", "the test split"))
    blocks += external_blocks(inputs, metrics) + curve_pictures(inputs) + efficiency_blocks(metrics)
    return ReportSection("classifiers", "The classifiers", blocks)


def glance_section(inputs: Inputs) -> ReportSection:
    """The answer first: the internal gain of synthetic images and whether it travelled to each
    external set."""
    metrics = inputs.metrics.get("classifier")
    if not metrics:
        return ReportSection("glance", "At a glance",
                       [Text("No classifier metrics yet (metrics/classifier.json absent).", note=True)])
    sentences = [t for t in difference_sentences(metrics) if t.text.startswith(WORDING[PRIMARY])]
    external = metrics.get("external") or {}
    travelled = [travel_text(metrics, name, result) for name, result in external.items()]
    if not external:
        travelled = [Text("No external test set evaluated: whether the result travels to another site "
                          "or scanner is not measured (evaluate.external).", note=True)]
    return ReportSection("glance", "At a glance", sentences + travelled)


MIN_IMPORTANCE_TRIALS = 10  # fANOVA importances of two knobs from fewer complete trials are noise
TUNE_FIGURES = (("history.png", "Optimisation history: each trial's validation AUC, best so far as a step "
                                 "line."),
                ("importances.png", "Which knob mattered (fANOVA importances)."),
                ("landscape.png", "Guidance scale × mix ratio landscape (colour: validation AUC; "
                                   "star: best)."))


def tuned_vs_test(tune: dict, classifier: dict | None) -> list:
    """The best validation AUC beside the tuned arm's test AUC, and what the gap means."""
    arm = ((classifier or {}).get("arms") or {}).get("real+synthetic") or {}
    test = (arm.get("seed_mean") or {}).get("auc_ovr_macro")
    rows = (("validation macro AUC (best of the trials)", num(tune.get("best_val_auc"))),
            ("test macro AUC, real+synthetic arm (evaluate)", interval(test)))
    blocks: list = [Table("Tuned on validation vs measured on test", ("measure", "macro AUC"), rows)]
    if isinstance(test, dict) and test.get("estimate") is not None and tune.get("best_val_auc") is not None:
        gap = tune["best_val_auc"] - test["estimate"]
        trials = sum((tune.get("trials") or {}).values())
        found = (f"here the test AUC is {num(gap)} lower" if gap > 0 else
                 f"here the test AUC is {num(-gap)} higher (a small validation split is noisy both ways)")
        blocks.append(Text(f"Winner's curse: the best of {trials} trials is chosen for its validation "
                           f"AUC, so that number is optimistic by construction; {found}. Quote the test "
                           "number."))
    return blocks


def tuning_section(inputs: Inputs) -> ReportSection:
    """Best params, trials, figures, tuned-on-validation vs test."""
    tune = inputs.metrics.get("tune")
    if not tune or not tune.get("best_params"):
        note = (tune or {}).get("note", "metrics/tune.json absent")
        return ReportSection("tuning", "The tuning", [Text(f"No tuning: {note}.", note=True)])
    rows = tuple((key.replace("_", " "), num(value)) for key, value in tune["best_params"].items())
    trials = ", ".join(f"{n} {state}" for state, n in (tune.get("trials") or {}).items())
    blocks: list = [Text(f"Optuna study {tune.get('study', '')}: {trials}; best trial "
                         f"#{tune.get('best_trial')}."),
                    Table("Best parameters", ("parameter", "value"), rows)]
    blocks += tuned_vs_test(tune, inputs.metrics.get("classifier"))
    complete = (tune.get("trials") or {}).get("complete", 0)
    for name, caption in TUNE_FIGURES:
        if name == "importances.png" and complete < MIN_IMPORTANCE_TRIALS:
            blocks.append(Text(f"Parameter importances not drawn: {complete} complete trials, and fANOVA "
                               f"needs at least {MIN_IMPORTANCE_TRIALS} to tell which knob mattered "
                               "(raise tune.n_trials).", note=True))
        elif name in inputs.tune_pictures:
            blocks.append(Picture(f"tune-{name}", inputs.tune_pictures[name], caption))
    return ReportSection("tuning", "The tuning", blocks)
