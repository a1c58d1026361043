"""Draw the posts that are labelled by hand, as fixed, reproducible batches.

Run once from the repo root (``python data/tools/make_annotation_batches.py``).
It writes ``data/annotation/batches/<name>.csv`` (item_id, source, text); the
annotators write ``data/annotation/labels/<name>.csv``. Drawing is seeded, so the
batches can be recreated exactly from ../shared/data.
"""

from __future__ import annotations

import csv
import random
from pathlib import Path

SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"
OUT = Path(__file__).resolve().parents[1] / "annotation" / "batches"
SEED = 20261122
#: Round 2 draws from what round 1 left, with its own seed, so round 1's batches stay exactly as they were.
ROUND2_SEED = 20261202
#: Round 2 leans to airline posts: they carry most of the order errors (lost luggage, bookings, refunds),
#: the rarest complaint type in round 1 (43 of 1,600 support tweets).
ROUND2 = {"airline_c": 400, "airline_d": 400, "airline_e": 400, "spotify_c": 400}
SECOND_PASS_ROWS = 250


def _read(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _dedup(rows: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    seen, out = set(), []
    for item_id, source, text in rows:
        key = " ".join(text.lower().split())
        if key and key not in seen:
            seen.add(key)
            out.append((item_id, source, text))
    return out


def _write(name: str, rows: list[tuple[str, str, str]]) -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / f"{name}.csv").open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["item_id", "source", "text"])
        w.writerows(rows)
    print(f"{name}: {len(rows)} rows")


def main() -> None:
    rng = random.Random(SEED)
    complaints = _dedup(
        [
            (f"preotiuc:{r['tweet_id']}", "preotiuc", r["text"])
            for r in _read(SHARED / "complaints-preotiuc2019" / "complaints.csv")
            if r["complaint"] == "1"
        ]
    )
    spotify = _dedup(
        [
            (f"spotify:{r['tweet_id']}", "spotifycares", r["text"])
            for r in _read(SHARED / "twcs-customer-support" / "spotifycares_inbound.csv")
            if len(r["text"].split()) >= 3
        ]
    )
    airline = _dedup(
        [
            (f"airline:{int(float(r['first_tweet_id']))}", "airline_first", r["text"])
            for r in _read(SHARED / "twcs-customer-support" / "airlines_first_utterances.csv")
            if len(r["text"].split()) >= 3
        ]
    )
    spotify_pool, airline_pool = spotify, airline
    spotify = rng.sample(spotify, 800)
    airline = rng.sample(airline, 800)
    half = len(complaints) // 2
    batches = {
        "preotiuc_a": complaints[:half],
        "preotiuc_b": complaints[half:],
        "spotify_a": spotify[:400],
        "spotify_b": spotify[400:],
        "airline_a": airline[:400],
        "airline_b": airline[400:],
    }
    for name, rows in batches.items():
        _write(name, rows)
    # The second, independent pass: a seeded draw across all first-pass batches.
    _write("second_pass", _second_pass(batches, rng))
    round2 = _round2(
        {"airline": airline_pool, "spotify": spotify_pool}, {r[0] for rows in batches.values() for r in rows}
    )
    for name, rows in round2.items():
        _write(name, rows)
    _write("second_pass_2", _second_pass(round2, random.Random(ROUND2_SEED + 1)))


def _second_pass(batches: dict[str, list[tuple[str, str, str]]], rng: random.Random) -> list[tuple[str, str, str]]:
    """A seeded draw across the given first-pass batches, for an independent second annotator."""
    pool = [row for rows in batches.values() for row in rows]
    return sorted(rng.sample(pool, SECOND_PASS_ROWS), key=lambda r: r[0])


def _round2(pools: dict[str, list[tuple[str, str, str]]], taken: set[str]) -> dict[str, list[tuple[str, str, str]]]:
    """Round 2's batches: fresh posts (none drawn in round 1), sized by :data:`ROUND2`."""
    rng = random.Random(ROUND2_SEED)
    out = {}
    for kind, pool in pools.items():
        names = [name for name in ROUND2 if name.startswith(kind)]
        left = [row for row in pool if row[0] not in taken]
        drawn = rng.sample(left, sum(ROUND2[name] for name in names))
        for name in names:
            out[name], drawn = drawn[: ROUND2[name]], drawn[ROUND2[name] :]
    return out


if __name__ == "__main__":
    main()
