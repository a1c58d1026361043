"""Report on the hand annotation: who/how, label counts, and agreement (Cohen's kappa).

Run from the repo root after the label files are complete:

    .venv/bin/python data/tools/annotation_report.py

Reads data/annotation/batches/*.csv (what was drawn) and data/annotation/labels/*.csv
(the labels), computes Cohen's kappa between the first pass and the independent
second pass on the rows both labelled, and rewrites the "Hand annotation" section
of data/README.md (everything after that heading) with the figures.
"""

from __future__ import annotations

import csv
import math
from collections import Counter
from pathlib import Path

DATA = Path(__file__).resolve().parents[1]
BATCHES = DATA / "annotation" / "batches"
LABELS = DATA / "annotation" / "labels"
HEADING = "## Hand annotation"
FIELDS = ("complaint_type", "sentiment", "troll")
#: Second-pass files: second_pass.csv (round 1), second_pass_2.csv (round 2), ...
SECOND_PASS = "second_pass"


def read(path: Path) -> dict[str, dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return {r["item_id"]: r for r in csv.DictReader(f)}


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """(observed agreement − chance agreement) / (1 − chance agreement)."""
    n = len(a)
    if n == 0:
        return float("nan")
    observed = sum(x == y for x, y in zip(a, b, strict=True)) / n
    ca, cb = Counter(a), Counter(b)
    expected = sum(ca[k] * cb[k] for k in set(ca) | set(cb)) / (n * n)
    return float("nan") if expected == 1 else (observed - expected) / (1 - expected)


def agreement(first: dict[str, dict[str, str]], second: dict[str, dict[str, str]], title: str) -> list[str]:
    """Markdown lines: kappa and raw agreement per label on the rows both passes labelled."""
    common = sorted(set(second) & set(first))
    lines = [
        f"Agreement between the first pass and the independent second pass, {title}:",
        "",
        "| label | Cohen's kappa | raw agreement |",
        "|---|---|---|",
    ]
    views = {f: (lambda r, f=f: r[f]) for f in FIELDS}
    views["complaint vs none"] = lambda r: "none" if r["complaint_type"] == "none" else "complaint"
    rare = []
    for name, get in views.items():
        a = [get(first[i]) for i in common]
        b = [get(second[i]) for i in common]
        kappa = cohen_kappa(a, b)
        shown = "undefined" if math.isnan(kappa) else f"{kappa:.3f}"
        lines.append(f"| {name} | {shown} | {sum(x == y for x, y in zip(a, b, strict=True)) / len(common):.3f} |")
        counts = Counter(a + b)
        if counts.most_common(1)[0][1] >= 0.98 * 2 * len(common):
            rare.append(f"{name} ({', '.join(f'{k}: {v}' for k, v in sorted(counts.items()))} over both passes)")
    lines += [""]
    if rare:
        lines += [
            "Kappa is uninformative where one label is (almost) always given: "
            + "; ".join(rare)
            + ". Chance agreement is then (near) 1, so a single disagreement on a rare label drives kappa to 0, "
            "and with one label only it is undefined; read the raw agreement and the counts there.",
            "",
        ]
    return lines


def main() -> None:
    first: dict[str, dict[str, str]] = {}
    lines = [
        HEADING,
        "",
        "Who and how: every label below was assigned by an LLM annotator (Claude) reading the post, one at a "
        "time, and following the labelling guideline, `docs/annotation.md`; each batch had one annotator working "
        "independently of the others, and no keyword rule or model prediction was used to assign a label. "
        "The second pass was made by another annotator that saw only the texts, not the first labels. "
        "Round 1 (2026-11-22: preotiuc_*, airline_a/b, spotify_a/b, second_pass) gives the validation rows; "
        "round 2 (2026-12-02: airline_c/d/e, spotify_c, second_pass_2, drawn by "
        "`data/tools/make_annotation_batches.py` from the posts round 1 left) adds training rows only.",
        "",
        "| batch | drawn | labelled | order_error | product | poor_service | none |",
        "|---|---|---|---|---|---|---|",
    ]
    for batch in sorted(BATCHES.glob("*.csv")):
        if batch.stem.startswith(SECOND_PASS):
            continue
        drawn = read(batch)
        path = LABELS / batch.name
        labelled = read(path) if path.exists() else {}
        if labelled and set(labelled) != set(drawn):
            raise SystemExit(f"{path}: labels do not cover exactly the drawn rows of {batch}")
        first.update(labelled)
        c = Counter(r["complaint_type"] for r in labelled.values())
        lines.append(
            f"| {batch.stem} | {len(drawn)} | {len(labelled)} | "
            + " | ".join(str(c[k]) for k in ("order_error", "product", "poor_service", "none"))
            + " |"
        )
    lines.append("")
    second_paths = sorted(LABELS.glob(f"{SECOND_PASS}*.csv"))
    if not second_paths:
        lines.append("The second pass is not complete yet; no agreement figures.")
    second: dict[str, dict[str, str]] = {}
    for path in second_paths:
        rows = read(path)
        second.update(rows)
        if len(second_paths) > 1:
            lines += agreement(first, rows, f"{path.stem} ({len(set(rows) & set(first))} rows)")
    if second_paths:
        lines += agreement(first, second, f"all second-pass rows ({len(set(second) & set(first))})")
        lines += ["The first pass's labels are the ones used for training and validation."]
    readme = DATA / "README.md"
    text = readme.read_text(encoding="utf-8")
    head = text.split(HEADING)[0].rstrip() + "\n\n"
    readme.write_text(head + "\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
