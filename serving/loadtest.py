"""Load test of ``earful serve`` on this machine (loopback only, bounded).

    python -m earful.serving.loadtest --out bench/service [--bundle PATH]

In one run: the predictor's own offline batch throughput on the same posts,
then the real service started on 127.0.0.1, then single-post callers at 1, 8,
32 and 128 concurrent clients (each level bounded by a request count and a
time limit). Reports throughput, p50/p99 latency, status codes, and the
service's throughput at 32 clients as a fraction of the offline figure.

The client is one asyncio loop (aiohttp), so it costs far less CPU than one
thread per client; on a 2-core machine it still competes with the service,
which makes the fraction a conservative figure.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

LEVELS = (1, 8, 32, 128)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_throughput(bundle: str | None, texts: list[str]) -> float:
    from earful.models.predictor import Predictor

    p = Predictor.load(bundle)
    p.predict(texts[:32])
    start = time.perf_counter()
    p.predict(texts, batch_size=32)
    return len(texts) / (time.perf_counter() - start)


async def _level(url: str, texts: list[str], clients: int, requests: int, time_limit: float) -> dict:
    import aiohttp

    latencies: list[float] = []
    codes: dict[int, int] = {}
    counter = iter(range(requests))
    deadline = time.perf_counter() + time_limit

    async def client(session):
        for i in counter:
            if time.perf_counter() > deadline:
                return
            body = {"posts": [{"text": texts[i % len(texts)], "id": str(i)}]}
            t = time.perf_counter()
            async with session.post(url, json=body) as r:
                await r.read()
                codes[r.status] = codes.get(r.status, 0) + 1
            latencies.append(time.perf_counter() - t)

    connector = aiohttp.TCPConnector(limit=clients)
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=120)) as session:
        start = time.perf_counter()
        await asyncio.gather(*(client(session) for _ in range(clients)))
        wall = time.perf_counter() - start
    ok = codes.get(200, 0)
    return {"clients": clients, "requests": len(latencies), "ok": ok, "codes": codes, "seconds": round(wall, 2),
            "throughput_rps": round(ok / wall, 1), "p50_ms": round(1000 * float(np.percentile(latencies, 50)), 1),
            "p99_ms": round(1000 * float(np.percentile(latencies, 99)), 1)}


def run(bundle: str | None, out: Path, n_posts: int, requests: int, time_limit: float) -> dict:
    from earful.eval.bench import sample_posts

    files = sorted(glob.glob("data/validation/*.csv.gz"))
    texts = sample_posts(files, n_posts)
    offline = offline_throughput(bundle, texts)
    port = _free_port()
    log = open(out / "service.log", "w")
    cmd = [sys.executable, "-m", "earful.cli", "serve", "--port", str(port)] + (["--bundle", bundle] if bundle else [])
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        import urllib.request

        for _ in range(180):
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                    break
            except OSError:
                time.sleep(0.5)
        else:
            raise RuntimeError(f"service did not start; see {out / 'service.log'}")
        url = f"http://127.0.0.1:{port}/classify"
        asyncio.run(_level(url, texts, 8, 64, 30))  # warm-up, not reported
        levels = [asyncio.run(_level(url, texts, c, requests, time_limit)) for c in LEVELS]
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
    at32 = next(level for level in levels if level["clients"] == 32)
    result = {"offline_posts_per_s": round(offline, 1), "levels": levels,
              "fraction_at_32_clients": round(at32["throughput_rps"] / offline, 3), "posts_per_request": 1,
              "cores": os.cpu_count()}
    (out / "loadtest.json").write_text(json.dumps(result, indent=2))
    lines = ["| clients | requests | req/s | p50 ms | p99 ms | status codes |", "|---|---|---|---|---|---|"]
    lines += [f"| {v['clients']} | {v['requests']} | {v['throughput_rps']} | {v['p50_ms']} | {v['p99_ms']} | {v['codes']} |" for v in levels]
    lines += ["", f"Offline predictor on the same posts: {offline:.1f} posts/s; the service at 32 clients reaches "
                  f"**{100 * result['fraction_at_32_clients']:.0f}%** of it."]
    (out / "loadtest.md").write_text("\n".join(lines) + "\n")
    return result


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", required=True)
    ap.add_argument("--bundle")
    ap.add_argument("--posts", type=int, default=1000, help="distinct posts sent (default 1000)")
    ap.add_argument("--requests", type=int, default=600, help="requests per concurrency level (default 600)")
    ap.add_argument("--time-limit", type=float, default=60, help="seconds per level at most (default 60)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    run(args.bundle, out, args.posts, args.requests, args.time_limit)
    print((out / "loadtest.md").read_text())


if __name__ == "__main__":
    main()
