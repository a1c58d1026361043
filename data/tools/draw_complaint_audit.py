"""Draw negative and offensive training posts that have no complaint-type label, for two readers to label.

The complaint-type head learns `none` mostly from posts addressed to brands; a negative post about no company
("I already hate finals") it had hardly seen labelled, and it calls such posts complaints
(docs/default-model.md, "The 0.5.0 candidate against 0.4.1"). This draws a fixed, seeded sample of them:

    python data/tools/draw_complaint_audit.py
    python data/tools/draw_complaint_audit.py --merge READER1.csv READER2.csv

The first writes ``data/annotation/complaint_audit/posts.csv`` (item_id, id, file, text), shuffled. Each reader
labels the texts alone (item_id, complaint_type, confidence); the second joins the two readings to the posts in
``readings.csv`` and prints how far the readers agree. ``build_data.py`` labels the posts both agree on.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import random
from collections import Counter
from pathlib import Path

from annotation_report import cohen_kappa, read

ROOT = Path(__file__).resolve().parents[2]
FOLDER = ROOT / "data" / "annotation" / "complaint_audit"
OUT = FOLDER / "posts.csv"
LABELS = ("order_error", "product", "poor_service", "none")
SEED = 20261207
#: file in data/train → (which rows, how many per language)
DRAW = {
    "semeval2017_task4a_en": (lambda r: r["sentiment"] == "negative", 240),
    "xlm_t_umsab": (lambda r: r["sentiment"] == "negative", 20),
    "olid": (lambda r: r["troll"] == "1", 80),
}


def draw() -> list[dict[str, str]]:
    rng = random.Random(SEED)
    posts = []
    for name, (keep, per_lang) in DRAW.items():
        with gzip.open(ROOT / "data" / "train" / f"{name}.csv.gz", "rt", encoding="utf-8", newline="") as f:
            rows = [r for r in csv.DictReader(f) if keep(r) and not r["complaint_type"]]
        for lang in sorted({r["lang"] for r in rows}):
            of_lang = [r for r in rows if r["lang"] == lang]
            posts += [{"id": r["id"], "file": name, "text": r["text"]} for r in rng.sample(of_lang, per_lang)]
    rng.shuffle(posts)
    return [{"item_id": f"c{i:04d}", **p} for i, p in enumerate(posts, 1)]


def merge(first: Path, second: Path) -> list[str]:
    """Join two readers' labels to the posts in ``readings.csv``; returns the agreement, as lines to print."""
    posts = list(read(OUT).values())
    readers = [read(path) for path in (first, second)]
    for path, labels in zip((first, second), readers, strict=True):
        if set(labels) != {p["item_id"] for p in posts}:
            raise SystemExit(f"{path}: its item_ids are not those of {OUT.name}; every post needs one label")
        if bad := sorted({r["complaint_type"] for r in labels.values()} - set(LABELS)):
            raise SystemExit(f"{path}: complaint_type {bad[0]!r} is not one of {', '.join(LABELS)}")
    rows = [
        {
            **p,
            **{f"reader{k}": r[p["item_id"]]["complaint_type"] for k, r in enumerate(readers, 1)},
            **{f"reader{k}_confidence": r[p["item_id"]]["confidence"] for k, r in enumerate(readers, 1)},
        }
        for p in posts
    ]
    with (FOLDER / "readings.csv").open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=[*posts[0], "reader1", "reader1_confidence", "reader2", "reader2_confidence"])
        w.writeheader()
        w.writerows(rows)
    a, b = [r["reader1"] for r in rows], [r["reader2"] for r in rows]
    agreed = [x for x, y in zip(a, b, strict=True) if x == y]
    binary = [["none" if x == "none" else "complaint" for x in v] for v in (a, b)]
    return [
        f"{len(rows)} posts; the readers agree on {len(agreed)} ({len(agreed) / len(rows):.1%}), "
        f"Cohen's kappa {cohen_kappa(a, b):.3f} (complaint vs none: {cohen_kappa(*binary):.3f})",
        "agreed labels: " + ", ".join(f"{k} {v}" for k, v in Counter(agreed).most_common()),
    ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--merge", nargs=2, type=Path, metavar=("READER1", "READER2"))
    args = ap.parse_args()
    if args.merge:
        print("\n".join(merge(*args.merge)))
        return
    posts = draw()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", encoding="utf-8", newline="") as f:
        w = csv.DictWriter(f, fieldnames=["item_id", "id", "file", "text"])
        w.writeheader()
        w.writerows(posts)
    print(f"{len(posts)} posts → {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
