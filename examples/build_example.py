"""Rebuild examples/deutsche_bahn_tweets.jsonl from the staged GermEval 2017 set.

    python examples/build_example.py [--source ../shared/data/germeval2017/germeval2017.csv]

Keeps the tweets of GermEval 2017's official dev split (the split earful validates on, never trained on)
posted from 2016-04-01 on, in time order, as JSONL with `id` (the tweet id), `created_at` (UTC, decoded from
the tweet id, whose upper bits hold the posting time in milliseconds since 2010-11-04T01:42:54.657Z) and
`text` as given. Deterministic: a re-run writes the same bytes.
"""

import argparse
import csv
import json
import re
from datetime import UTC, datetime
from pathlib import Path

TWITTER_EPOCH_MS = 1288834974657
SINCE = datetime(2016, 4, 1, tzinfo=UTC)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="../shared/data/germeval2017/germeval2017.csv")
    ap.add_argument("--out", default=str(Path(__file__).with_name("deutsche_bahn_tweets.jsonl")))
    args = ap.parse_args()
    rows = []
    with open(args.source, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            m = re.search(r"twitter\.com/.*/status(?:es)?/(\d+)", r["doc_id"])
            if r["split"] != "dev" or not m:
                continue
            tweet_id = int(m.group(1))
            created = datetime.fromtimestamp(((tweet_id >> 22) + TWITTER_EPOCH_MS) / 1000, UTC)
            if created >= SINCE:
                rows.append((created, tweet_id, r["text"]))
    rows.sort()
    with open(args.out, "w", encoding="utf-8") as f:
        for created, tweet_id, text in rows:
            stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
            f.write(json.dumps({"id": str(tweet_id), "created_at": stamp, "text": text}, ensure_ascii=False) + "\n")
    print(f"{len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
