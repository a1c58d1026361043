"""Rebuild examples/spotifycares_inbound.jsonl.gz from the staged SpotifyCares tweets.

    python examples/build_spotifycares.py [--source ../shared/data/twcs-customer-support/spotifycares_inbound.csv]

Keeps every inbound tweet to @SpotifyCares of the staged extract of Customer Support on Twitter, in the extract's
order, as gzipped JSONL with `id` (the tweet id), `author_id` (the data set's anonymised author
number), `created_at` (UTC, ISO 8601, converted from Twitter's "Tue Oct 31 23:36:20 +0000 2017") and `text` as
given. The reply-link columns are left out: they name brand replies that are not in the extract. Deterministic:
a re-run writes the same bytes (no time or file name in the gzip header).
"""

import argparse
import csv
import gzip
import io
import json
from datetime import UTC, datetime
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--source", default="../shared/data/twcs-customer-support/spotifycares_inbound.csv")
    ap.add_argument("--out", default=str(Path(__file__).with_name("spotifycares_inbound.jsonl.gz")))
    args = ap.parse_args()
    rows = []
    with open(args.source, encoding="utf-8", newline="") as f:
        for r in csv.DictReader(f):
            created = datetime.strptime(r["created_at"], "%a %b %d %H:%M:%S %z %Y").astimezone(UTC)
            rows.append((created, int(r["tweet_id"]), r["author_id"], r["text"]))
    buf = io.StringIO()
    for created, tweet_id, author, text in rows:
        stamp = created.strftime("%Y-%m-%dT%H:%M:%SZ")
        rec = {"id": str(tweet_id), "author_id": author, "created_at": stamp, "text": text}
        buf.write(json.dumps(rec, ensure_ascii=False) + "\n")
    with open(args.out, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as gz:
        gz.write(buf.getvalue().encode("utf-8"))
    print(f"{len(rows)} rows -> {args.out}")


if __name__ == "__main__":
    main()
