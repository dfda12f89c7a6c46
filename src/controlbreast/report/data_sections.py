"""The report's first two parts: the data, and the synthetic images made from it."""

from __future__ import annotations

from controlbreast.report import figures
from controlbreast.report.document import Picture, ReportSection, Table, Text
from controlbreast.report.inputs import Inputs
from controlbreast.report.numbers import interval, num

SPLITS = ("train", "val", "test")
REJECTED_SHOWN = 15


def counts_table(inputs: Inputs) -> Table:
    """Images per class (rows) and split (columns), with totals."""
    rows = []
    for name in inputs.classes:
        counts = [sum(r["label"] == name and r["split"] == s for r in inputs.manifest) for s in SPLITS]
        rows.append((name, *map(str, counts), str(sum(counts))))
    totals = [sum(r["split"] == s for r in inputs.manifest) for s in SPLITS]
    rows.append(("all", *map(str, totals), str(len(inputs.manifest))))
    return Table("Prepared images per class and split", ("class", *SPLITS, "total"), tuple(rows))


def rejected_blocks(inputs: Inputs) -> list:
    """Why inputs were left out (counts from ``ingest.json``) and the files (``rejected.csv``)."""
    ingest = inputs.metrics.get("ingest") or {}
    reasons = ingest.get("rejected_by_reason") or {}
    if not inputs.rejected and not reasons:
        return [Text("No input was rejected at ingest.", note=True)]
    blocks: list = []
    if reasons:
        blocks.append(Table("Rejected inputs by reason", ("reason", "files"),
                            tuple((reason, str(n)) for reason, n in reasons.items())))
    shown = inputs.rejected[:REJECTED_SHOWN]
    if shown:
        blocks.append(Table(f"Rejected files ({len(shown)} of {len(inputs.rejected)})", ("file", "problem"),
                            tuple((r["source_path"], r["problem"]) for r in shown)))
    return blocks


def near_duplicate_blocks(inputs: Inputs) -> list:
    """What near-duplicate grouping did (``ingest.json``'s ``near_duplicates``)."""
    merges = (inputs.metrics.get("ingest") or {}).get("near_duplicates")
    if not merges:
        return [Text("Near-duplicate grouping: not recorded (metrics/ingest.json absent).", note=True)]
    return [Table("Near-duplicate groups (perceptual hash, confirmed by pixels; a group never spans "
                  "two splits)", ("measure", "value"),
                  tuple((key.replace("_", " "), num(value)) for key, value in merges.items()))]


def gate_blocks(inputs: Inputs) -> list:
    """The data-quality gate's verdict and every expectation's outcome."""
    gate = inputs.metrics.get("data_quality")
    if not gate:
        return [Text("Data-quality gate: no result (metrics/data_quality.json absent).", note=True)]
    checks = gate.get("expectations") or []
    failed = sum(not c.get("passed") for c in checks)
    verdict = "PASSED" if gate.get("passed") else "FAILED"
    rows = tuple((c.get("expectation", "?"), str(c.get("table", "")), "pass" if c.get("passed") else "FAIL")
                 for c in checks)
    return [Text(f"Data-quality gate {verdict}: {len(checks) - failed} of {len(checks)} expectations met "
                 f"on {gate.get('images', 'n/a')} images.", key=True),
            Table("Data-quality expectations", ("expectation", "table", "result"), rows)]


def data_section(inputs: Inputs) -> ReportSection:
    """Counts per class and split, rejections, near-duplicates, examples, the gate."""
    blocks: list = [Text(f"{len(inputs.manifest)} prepared images in {len(inputs.classes)} classes "
                         f"({', '.join(inputs.classes)})."), counts_table(inputs)]
    if inputs.manifest:
        blocks.append(Picture("class-counts.png", figures.class_count_figure(inputs.manifest, inputs.classes),
                              "Images per split; one colour per class, the same in every figure."))
    blocks += rejected_blocks(inputs) + near_duplicate_blocks(inputs)
    if inputs.examples:
        blocks.append(Picture("examples.png", figures.examples_grid(inputs.examples, inputs.classes),
                              "Real training images with the controls the ControlNet is conditioned on."))
    return ReportSection("data", "The data", blocks + gate_blocks(inputs))


REALISM = (("fid", "FID"), ("kid_mean", "KID"), ("precision", "precision"), ("recall", "recall"))


def realism_table(realism: dict) -> Table:
    """FID/KID/precision/recall of the synthetic set beside the reference values (real validation
    images against the same training images; and the synthetic set at the validation size)."""
    columns = [("synthetic", realism.get("overall") or {})]
    if realism.get("synthetic_at_reference_size"):
        at_size = realism["synthetic_at_reference_size"].get("overall") or {}
        columns.append(("synthetic at reference size", at_size))
    columns.append(("reference: real val", (realism.get("reference_real_val") or {}).get("overall") or {}))
    rows = tuple((label, *(num(values.get(key), 4 if key == "kid_mean" else 3) for _, values in columns))
                 for key, label in REALISM)
    return Table("Realism in the real-only classifier's features, against the real training split "
                 "(FID, KID: lower is better; precision, recall: higher is better, 0-1)",
                 ("metric", *(name for name, _ in columns)), rows)


def fidelity_table(report: dict) -> Table:
    """Control fidelity (own vs shuffled controls) and class fidelity, one row each."""
    control = report.get("control_fidelity") or {}
    rows = []
    for key, label in (("edge_f1", "edge F1, shuffled across the set"),
                       ("edge_f1_within_class", "edge F1, shuffled within the class"),
                       ("mask_dice", "lesion mask Dice, shuffled within the class")):
        if key in control and "matched" in control[key]:
            v = control[key]
            rows.append((label, num(v["matched"]), num(v["shuffled"]), num(v["ratio"], 2) + "x"))
    ceiling = (control.get("reference_real_val") or {}).get("edge_f1") or {}
    if "matched" in ceiling:
        rows.append(("edge F1: real validation images, own controls (shuffled across the set)",
                     num(ceiling["matched"]), num(ceiling["shuffled"]), num(ceiling["ratio"], 2) + "x"))
    placed = report.get("lesion_placement") or {}
    if "matched" in placed:
        real = (placed.get("reference_real_val") or {}).get("matched")
        rows.append(("lesion segmenter Dice with the source mask (shuffled within the class)",
                     num(placed["matched"]), num(placed["shuffled"]), num(placed["ratio"], 2) + "x"))
        rows.append(("lesion segmenter Dice: real validation images, own masks", num(real), "", ""))
    classes = report.get("class_fidelity") or {}
    reference = classes.get("reference_real_val") or {}
    for key, label in (("accuracy", "class fidelity: accuracy (real-only classifier)"),
                       ("macro_auc", "class fidelity: macro AUC (real-only classifier)")):
        if key in classes:
            rows.append((label, num(classes[key]), "real val: " + num(reference.get(key)), ""))
    return Table("Fidelity: does each image follow its control and its class?",
                 ("measure", "synthetic", "reference", "ratio"), tuple(rows))


def memorisation_text(report: dict) -> Text:
    """Likely copies and how close the closest synthetic image is compared with held-out images."""
    memo = report.get("memorisation") or {}
    ssim = (memo.get("synthetic") or {}).get("ssim") or {}
    return Text(f"Likely copies of training images: {memo.get('likely_copies', 'n/a')}. "
                f"Fraction of synthetic images closer (SSIM) to a training image than any real "
                f"validation image is: {num(ssim.get('fraction_above_real_val_max'))}.")


def separability_blocks(report: dict) -> list:
    """Real-vs-synthetic separability (a classifier two-sample test), when ``evaluate-synthetic``
    measured it: the discriminator's held-out AUC with its interval, overall and per class."""
    found = report.get("separability")
    if not isinstance(found, dict) or not isinstance(found.get("overall"), dict):
        return [Text("Real-vs-synthetic separability: not measured in metrics/synthetic.json.", note=True)]
    scored = [("all classes", found["overall"]), *found.get("per_class", {}).items()]
    rows = tuple((name, interval(value), num(value.get("real")), num(value.get("synthetic")))
                 for name, value in scored)
    return [Table("Real-vs-synthetic separability: held-out AUC of a classifier telling them apart "
                  "(0.5 = indistinguishable, 1 = always told apart)",
                  ("images", "AUC [95% CI]", "real", "synthetic"), rows)]


def synthetic_section(inputs: Inputs) -> ReportSection:
    """Grids per class, closest pairs, realism, fidelity, memorisation, separability."""
    report = inputs.metrics.get("synthetic")
    blocks: list = []
    for label in inputs.classes:  # in data.classes order, as every other figure
        name = f"grid-{label}.png"
        if name in inputs.synthetic_pictures:
            blocks.append(Picture(f"synthetic-{name}", inputs.synthetic_pictures[name],
                                  f"{label}: real source | control used | synthetic (one row per image)"))
    if "closest-pairs.png" in inputs.synthetic_pictures:
        blocks.append(Picture("synthetic-closest-pairs.png", inputs.synthetic_pictures["closest-pairs.png"],
                              "Closest to training: synthetic | nearest training image by SSIM | "
                              "by features"))
    if not report:
        absent = Text("No synthetic-set metrics (metrics/synthetic.json absent).", note=True)
        return ReportSection("synthetic", "The synthetic images", [*blocks, absent])
    blocks.insert(0, Text(f"{report.get('images', 'n/a')} synthetic images, judged by the real-only "
                          f"classifier {report.get('classifier', '')}."))
    blocks += [realism_table(report.get("realism") or {}), fidelity_table(report), memorisation_text(report)]
    return ReportSection("synthetic", "The synthetic images", blocks + separability_blocks(report))
