"""Draw the posts that were translated: a seeded sample of the TRAINING split of
twcs_annotated (never validation), stratified by complaint type x sentiment.

    .venv/bin/python data/annotation/translations/sample.py > /tmp/sample.tsv

Only English rows with a fine complaint type and a sentiment, whose text keeps
at least four words once @handles and URLs are dropped. The output order
interleaves the types so that every prefix of the list is balanced."""

from __future__ import annotations

import csv
import gzip
import random
import re
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
SEED = "20261122:twcs_translated:sample"
TARGET = {"order_error": 80, "product": 60, "poor_service": 60, "none": 40}
_STRIP = re.compile(r"@\w+|(?:https?://|www\.)\S*", re.I)


def main() -> None:
    with gzip.open(ROOT / "data" / "train" / "twcs_annotated.csv.gz", "rt", encoding="utf-8", newline="") as f:
        rows = [r for r in csv.DictReader(f)]
    rows = [
        r
        for r in rows
        if r["lang"] == "en"
        and r["complaint_type"] in TARGET
        and r["sentiment"]
        and len(_STRIP.sub(" ", r["text"]).split()) >= 4
    ]
    rng = random.Random(SEED)
    picked: dict[str, list[dict]] = {}
    for ct, n in TARGET.items():
        strata: dict[str, list[dict]] = defaultdict(list)
        for r in rows:
            if r["complaint_type"] == ct:
                strata[r["sentiment"]].append(r)
        total = sum(map(len, strata.values()))
        n = min(n, total)
        quota = {s: round(n * len(v) / total) for s, v in strata.items()}
        while sum(quota.values()) > n:
            quota[max(quota, key=quota.get)] -= 1
        while sum(quota.values()) < n:
            quota[max(strata, key=lambda s: len(strata[s]) - quota[s])] += 1
        got = []
        for s in sorted(strata):
            got += rng.sample(sorted(strata[s], key=lambda r: r["id"]), quota[s])
        rng.shuffle(got)
        picked[ct] = got
    # interleave: each prefix keeps the types' proportions
    order = sorted(((i + 0.5) / len(v), ct, r) for ct, v in picked.items() for i, r in enumerate(v))
    w = csv.writer(sys.stdout, delimiter="\t", lineterminator="\n")
    for _, ct, r in order:
        w.writerow([r["id"], ct, r["sentiment"], " ".join(r["text"].split())])


if __name__ == "__main__":
    main()
