"""Throughput and memory of ``earful score`` on an archive, with 1 and 2 workers.

    python -m earful.batch.bench --rows 100000 --out bench/batch [--bundle PATH] [--workers 1 2]

Builds an archive of real posts (a seeded sample of the texts in ``data/``,
repeated only if ``--rows`` asks for more than there are), then runs the real
``earful score`` command on it once per worker count, one after the other in the
same run, and reports rows/s and the peak resident memory of the whole process
tree (the command and its worker processes, sampled every 0.2 s from /proc).
Writes ``batch_bench.json`` and ``batch_bench.md``.
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from earful.labelled import read_labelled
from earful.machine import heading, stamp


@dataclass
class ScoreRun:
    workers: int
    rows: int
    seconds: float
    rows_per_s: float
    peak_rss_mb: float


def build_archive(path: Path, rows: int, seed: int = 0) -> int:
    """A JSONL archive of ``rows`` real posts from data/ (id, text)."""
    texts = [
        t
        for f in sorted(glob.glob("data/train/*.csv.gz")) + sorted(glob.glob("data/validation/*.csv.gz"))
        for t in read_labelled(f, require_text=False).text
        if t and t.strip()
    ]
    if not texts:
        raise SystemExit("no posts found under data/: run from the repository root")
    rng = random.Random(seed)
    rng.shuffle(texts)
    with path.open("w", encoding="utf-8") as f:
        for i in range(rows):
            f.write(json.dumps({"id": f"r{i}", "text": texts[i % len(texts)]}, ensure_ascii=False) + "\n")
    return rows


def _tree_rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    rss: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
            rss[int(entry)] = int(fields[21]) * os.sysconf("SC_PAGE_SIZE")
        except (OSError, IndexError, ValueError):
            continue
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        total += rss.get(p, 0)
        todo.extend(children.get(p, []))
    return total / 1e6


def run_score(archive: Path, out: Path, workers: int, bundle: str | None) -> ScoreRun:
    cmd = [
        str(Path(sys.executable).with_name("earful")),
        "score",
        str(archive),
        "-o",
        str(out),
        "--workers",
        str(workers),
    ]
    if bundle:
        cmd += ["--bundle", bundle]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _tree_rss_mb(proc.pid))
        time.sleep(0.2)
    seconds = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"earful score failed with exit code {proc.returncode}: {' '.join(cmd)}")
    summary = json.loads(proc.stdout.read().decode())
    rows = int(summary.get("rows", 0))
    return ScoreRun(workers, rows, seconds, rows / seconds, peak)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--bundle", help="default: models/default")
    ap.add_argument("--out", default="bench/batch")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="earful-batch-bench-") as tmp:
        archive = Path(tmp) / "archive.jsonl"
        build_archive(archive, args.rows)
        runs = [run_score(archive, Path(tmp) / f"scored-{w}.parquet", w, args.bundle) for w in args.workers]
    result = {
        "rows": args.rows,
        "cores": os.cpu_count(),
        "bundle": args.bundle or "models/default",
        "command": "python -m earful.batch.bench " + " ".join(argv if argv is not None else sys.argv[1:]),
        "runs": [asdict(r) for r in runs],
        **stamp(),
    }
    (out / "batch_bench.json").write_text(json.dumps(result, indent=2))
    lines = [
        f"# earful score: {args.rows:,} real posts, {os.cpu_count()} cores",
        "",
        heading(result),
        "",
        "| workers | rows | seconds | rows/s | peak RSS, all processes (MB) |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r.workers} | {r.rows:,} | {r.seconds:.1f} | {r.rows_per_s:.1f} | {r.peak_rss_mb:.0f} |" for r in runs
    ]
    (out / "batch_bench.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
