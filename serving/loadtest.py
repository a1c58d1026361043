"""Load test of ``earful serve`` on the machine it runs on (loopback only, bounded).

    python -m earful.serving.loadtest --out bench/service [--bundle PATH]
    python -m earful.serving.loadtest --out /tmp/soak --soak 600 --clients 32   # one long run
    python -m earful.serving.loadtest --render /tmp/soak/soak.json             # its Markdown again

In one run: the predictor's own offline batch throughput on the same posts,
then the real service started on 127.0.0.1, then single-post callers at 1, 8,
32 and 128 concurrent clients (each level bounded by a request count and a
time limit), then the offline throughput again once the service has stopped;
three such rounds by default. Reports throughput, p50/p99 latency, status
codes, and the service's throughput at 32 clients as a fraction of the mean of
its round's two offline figures (measuring before and after cancels a slow
drift of the machine's speed), as the median round and the range.

The client is one asyncio loop speaking plain HTTP/1.1 over keep-alive
connections, so it costs far less CPU than one thread per client (or aiohttp);
on a machine with few cores it still competes with the service, which makes the
fraction a conservative figure.

``--soak SECONDS`` runs one level instead, ``--clients`` single-post callers for
that long (and at most ``--soak-requests`` requests), and reports every status,
latency percentiles, throughput per minute and the ERROR lines in the service's
log: a service that keeps its budget answers no 5xx at a load it can carry.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import glob
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.parse
from pathlib import Path

import numpy as np

from earful.machine import heading, machine, stamp

LEVELS = (1, 8, 32, 128)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def offline_throughput(predictor, texts: list[str]) -> float:
    """Posts/s of a predictor using every core, given all posts in one call."""
    predictor.predict(texts[:32])
    start = time.perf_counter()
    predictor.predict(texts)
    return len(texts) / (time.perf_counter() - start)


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """One HTTP/1.1 response: (status, body, whether the server closes the connection)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip().lower()
    if b"chunked" in headers.get(b"transfer-encoding", b""):
        chunks = []
        while size := int((await reader.readuntil(b"\r\n")).strip().split(b";")[0], 16):
            chunks.append(await reader.readexactly(size + 2))
        await reader.readuntil(b"\r\n")
        body = b"".join(c[:-2] for c in chunks)
    else:
        body = await reader.readexactly(int(headers.get(b"content-length", b"0")))
    return status, body, headers.get(b"connection") == b"close"


async def _level(
    url: str,
    texts: list[str],
    clients: int,
    requests: int,
    time_limit: float,
    timeline: list[tuple[float, int]] | None = None,
) -> dict:
    """``clients`` keep-alive connections sending single-post requests until
    ``requests`` are done or ``time_limit`` passes; ``timeline`` gets (seconds
    from the start, status) of every answer.

    A plain asyncio HTTP/1.1 client rather than aiohttp: on a machine with few
    cores the load generator takes CPU from the service it measures, and this one
    costs under half of aiohttp's CPU per request (0.14-0.18 against 0.35-0.42 ms
    at 32 clients, alternating runs against one service). It still checks every
    answer: status line, length or chunks, and that a 200 body is the results
    envelope."""
    parsed = urllib.parse.urlsplit(url)
    host, port = parsed.hostname, parsed.port or 80
    head = (
        f"POST {parsed.path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
        "Content-Length: %d\r\n\r\n"
    ).encode()
    encoded = [json.dumps(t).encode() for t in texts]
    latencies: list[float] = []
    codes: dict[int, int] = {}
    malformed = 0
    counter = iter(range(requests))
    deadline = time.perf_counter() + time_limit

    async def client():
        nonlocal malformed
        reader = writer = None
        try:
            for i in counter:
                if time.perf_counter() > deadline:
                    return
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port)
                body = b'{"posts":[{"id":"%d","text":%s}]}' % (i, encoded[i % len(encoded)])
                t = time.perf_counter()
                writer.write(head % len(body) + body)
                status, answer, close = await asyncio.wait_for(_read_response(reader), 120)
                latencies.append(time.perf_counter() - t)
                codes[status] = codes.get(status, 0) + 1
                if timeline is not None:
                    timeline.append((latencies[-1] + t - start, status))
                if status == 200 and not answer.startswith(b'{"results":['):
                    malformed += 1
                if close:
                    writer.close()
                    reader = writer = None
        finally:
            if writer is not None:
                writer.close()

    start, cpu = time.perf_counter(), time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall, cpu = time.perf_counter() - start, time.process_time() - cpu
    ok = codes.get(200, 0) - malformed
    ms = {
        f"p{str(q).replace('.', '')}_ms": round(1000 * float(np.percentile(latencies, q)), 1)
        for q in (50, 90, 99, 99.9)
    }
    return {
        "clients": clients,
        "requests": len(latencies),
        "ok": ok,
        "codes": codes,
        "malformed": malformed,
        "seconds": round(wall, 2),
        "throughput_rps": round(ok / wall, 1),
        **ms,
        "max_ms": round(1000 * max(latencies), 1),
        "client_cpu_ms_per_request": round(1000 * cpu / max(len(latencies), 1), 3),
    }


@contextlib.contextmanager
def _serving(bundle: str | None, log_path: Path, texts: list[str]):
    """The real service on 127.0.0.1, warmed up by 64 requests of ``texts``; yields its /classify URL, then stops it.

    The client runs on uvloop, as the service does: 20% less client CPU per
    request than asyncio's own loop."""
    import urllib.request

    import uvloop

    port = _free_port()
    cmd = [sys.executable, "-m", "earful.cli", "serve", "--host", "127.0.0.1", "--port", str(port)]
    with open(log_path, "w") as log:
        proc = subprocess.Popen(
            cmd + (["--bundle", bundle] if bundle else []), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            for _ in range(180):
                try:
                    if urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2).status == 200:
                        break
                except OSError:
                    time.sleep(0.5)
            else:
                raise RuntimeError(f"service did not start; see {log_path}")
            url = f"http://127.0.0.1:{port}/classify"
            uvloop.run(_level(url, texts, 8, 64, 30))  # warm-up, not reported
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)


def _service_round(
    bundle: str | None, texts: list[str], log_path: Path, requests: int, time_limit: float
) -> list[dict]:
    """Start the real service, run every concurrency level once, stop it."""
    import uvloop

    with _serving(bundle, log_path, texts) as url:
        return [uvloop.run(_level(url, texts, c, requests, time_limit)) for c in LEVELS]


def _logged_overheads(log_path: Path) -> list[int]:
    """The run overhead each worker measured at start-up, from its model_loaded log line."""
    found = []
    for line in log_path.read_text(errors="replace").splitlines():
        try:
            record = json.loads(line).get("record", {})
        except (ValueError, AttributeError):
            continue  # BentoML's own lines
        if isinstance(record, dict) and record.get("event") == "model_loaded":
            found.append(record.get("run_overhead_tokens"))
    return found


def run(bundle: str | None, out: Path, n_posts: int, requests: int, time_limit: float, rounds: int = 3) -> dict:
    """``rounds`` rounds of: offline figure, service at every level, offline figure again.

    Each round's fraction divides its 32-client throughput by the mean of its
    two offline figures. The report gives the median round and the range,
    because on a shared machine one round can differ from the next by
    a factor of two."""
    from earful.eval.bench import sample_posts
    from earful.models.predictor import Predictor

    files = sorted(glob.glob("data/validation/*.csv.gz"))
    texts = sample_posts(files, n_posts)
    predictor = Predictor.load(bundle)
    # The service measures a run's fixed cost at start-up and cuts batches with it; so does the offline figure.
    overhead = predictor.measure_run_cost()
    results = []
    for r in range(rounds):
        before = offline_throughput(predictor, texts)
        levels = _service_round(bundle, texts, out / f"service.{r + 1}.log", requests, time_limit)
        after = offline_throughput(predictor, texts)
        at32 = next(level for level in levels if level["clients"] == 32)
        offline = (before + after) / 2
        results.append(
            {
                "round": r + 1,
                "offline_posts_per_s": round(offline, 1),
                "offline_before_after": [round(before, 1), round(after, 1)],
                "service_run_overhead_tokens": _logged_overheads(out / f"service.{r + 1}.log"),
                "levels": levels,
                "fraction_at_32_clients": round(at32["throughput_rps"] / offline, 3),
            }
        )
    fractions = [x["fraction_at_32_clients"] for x in results]
    median = sorted(results, key=lambda x: x["fraction_at_32_clients"])[len(results) // 2]
    result = {
        "rounds": results,
        "median_round": median["round"],
        "fraction_at_32_clients": median["fraction_at_32_clients"],
        "fraction_range": [min(fractions), max(fractions)],
        "posts_per_request": 1,
        "cores": os.cpu_count(),
        **stamp(),
        "offline_run_overhead_tokens": overhead,
        "workers": os.environ.get("EARFUL_WORKERS", "default"),
        "threads": os.environ.get("EARFUL_THREADS", "default"),
    }
    (out / "loadtest.json").write_text(json.dumps(result, indent=2))
    (out / "loadtest.md").write_text(_markdown(result))
    return result


def _markdown(result: dict) -> str:
    median = next(x for x in result["rounds"] if x["round"] == result["median_round"])
    lines = [
        heading(result),
        "",
        f"Median of {len(result['rounds'])} rounds (round {median['round']}):",
        "",
        "| clients | requests | req/s | req/s, all rounds | p50 ms | p99 ms | status codes | client CPU ms/request |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for i, v in enumerate(median["levels"]):
        every = " / ".join(str(x["levels"][i]["throughput_rps"]) for x in result["rounds"])
        codes = {int(code): n for code, n in v["codes"].items()}  # JSON keeps them as strings
        lines.append(
            f"| {v['clients']} | {v['requests']} | {v['throughput_rps']} | {every} | {v['p50_ms']} | {v['p99_ms']} | "
            f"{codes} | {v['client_cpu_ms_per_request']} |"
        )
    lo, hi = result["fraction_range"]
    before, after = median["offline_before_after"]
    lines += [
        "",
        "Offline predictor on the same posts (one process, every core, all posts in one call): "
        f"{median['offline_posts_per_s']:.1f} posts/s in that round (mean of {before:.1f} before and {after:.1f} "
        f"after the service ran). The service at 32 clients reaches **{100 * result['fraction_at_32_clients']:.0f}%** "
        f"of it (rounds: {100 * lo:.0f}–{100 * hi:.0f}%).",
        "",
        f"A run's fixed cost as measured at start-up, in padded tokens: {result['offline_run_overhead_tokens']} "
        f"offline, {median['service_run_overhead_tokens']} in the service's workers in that round.",
    ]
    return "\n".join(lines) + "\n"


def _log_summary(log_path: Path) -> dict:
    """ERROR lines and answered statuses in a service log (the guard's JSON access lines)."""
    errors, statuses = 0, {}
    for line in log_path.read_text(errors="replace").splitlines():
        errors += "[ERROR]" in line or '"level": "ERROR"' in line
        try:
            record = json.loads(line).get("record", {})
        except (ValueError, AttributeError):
            continue
        if isinstance(record, dict) and record.get("event") == "request" and record.get("path") == "/classify":
            statuses[str(record["status"])] = statuses.get(str(record["status"]), 0) + 1
    return {"error_lines": errors, "classify_statuses": statuses}


def soak(
    bundle: str | None, out: Path, n_posts: int, clients: int, seconds: float, max_requests: int, command: str
) -> dict:
    """One long level against a freshly started service: every answer's status, per minute too."""
    import uvloop

    from earful.eval.bench import sample_posts

    texts = sample_posts(sorted(glob.glob("data/validation/*.csv.gz")), n_posts)
    timeline: list[tuple[float, int]] = []
    began = datetime.datetime.now(datetime.UTC)
    with _serving(bundle, out / "service.soak.log", texts) as url:
        level = uvloop.run(_level(url, texts, clients, max_requests, seconds, timeline))
    minutes: dict[int, dict[int, int]] = {}
    last = max(int(np.ceil(seconds / 60)) - 1, 0)  # answers to requests sent before the time limit count in its minute
    for at, status in timeline:
        minute = minutes.setdefault(min(int(at // 60), last), {})
        minute[status] = minute.get(status, 0) + 1
    result = {
        "command": command,
        "started_utc": began.isoformat(timespec="seconds"),
        "ended_utc": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "bundle": bundle or "models/default",
        "posts_per_request": 1,
        "distinct_posts": len(texts),
        "time_limit_s": seconds,
        "max_requests": max_requests,
        **level,
        "server_errors": sum(n for code, n in level["codes"].items() if int(code) >= 500),
        "per_minute": [
            {"minute": m + 1, "codes": codes, "requests_per_s": round(sum(codes.values()) / span, 1)}
            for m, codes in sorted(minutes.items())
            for span in [level["seconds"] - 60 * m if m == max(minutes) else 60]
        ],
        "service_log": _log_summary(out / "service.soak.log"),
    }
    (out / "soak.json").write_text(json.dumps(result, indent=2))
    (out / "soak.md").write_text(soak_markdown(result))
    return result


def _codes(codes: dict) -> str:
    return ", ".join(f"{code}: {n}" for code, n in sorted(codes.items()))


def soak_markdown(result: dict, title: str = "Soak") -> str:
    """The soak's figures as a Markdown section headed ``title``, from its JSON."""
    r = result
    said = [
        f"`{r['command']}`, {r['started_utc']} to {r['ended_utc']}, on {r['machine']}; the service started by the "
        f"script on 127.0.0.1 with bundle `{r['bundle']}` and its default settings and warmed up by 64 requests, "
        f"then {r['clients']} closed-loop clients sending one post per request ({r['distinct_posts']} distinct "
        f"posts from data/validation), bounded by {r['time_limit_s']:g} s and {r['max_requests']} requests.",
        "Per minute (requests/s; statuses): "
        + "; ".join(f"{m['minute']}: {m['requests_per_s']} ({_codes(m['codes'])})" for m in r["per_minute"])
        + ".",
        f"The service's log: {r['service_log']['error_lines']} ERROR lines; /classify answers logged by status: "
        f"{_codes(r['service_log']['classify_statuses'])}. "
        f"Client CPU per request: {r['client_cpu_ms_per_request']} ms.",
    ]
    said = [textwrap.fill(x, 118, break_on_hyphens=False, break_long_words=False) for x in said]
    table = [
        "| requests | statuses | 5xx | malformed 200s | req/s | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms |",
        "|---|---|---|---|---|---|---|---|---|---|",
        f"| {r['requests']} | {_codes(r['codes'])} | {r['server_errors']} | {r['malformed']} "
        f"| {r['throughput_rps']} | {r['p50_ms']} | {r['p90_ms']} | {r['p99_ms']} | {r['p999_ms']} "
        f"| {r['max_ms']} |",
    ]
    return "\n\n".join([f"## {title}", said[0], "\n".join(table), *said[1:]]) + "\n"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="folder for the results and the service's log (required unless --render)")
    ap.add_argument("--bundle")
    ap.add_argument("--posts", type=int, default=1000, help="distinct posts sent (default 1000)")
    ap.add_argument("--requests", type=int, default=2000, help="requests per concurrency level (default 2000)")
    ap.add_argument("--time-limit", type=float, default=60, help="seconds per level at most (default 60)")
    ap.add_argument(
        "--rounds", type=int, default=3, help="service start-to-stop rounds; the median is reported (default 3)"
    )
    ap.add_argument("--soak", type=float, metavar="SECONDS", help="instead: --clients callers for this long, once")
    ap.add_argument("--clients", type=int, default=32, help="callers in a soak (default 32)")
    ap.add_argument("--soak-requests", type=int, help="requests in a soak at most (default 1,000 per second of it)")
    ap.add_argument("--render", metavar="SOAK_JSON", help="print the Markdown of a soak's JSON and exit")
    ap.add_argument("--title", default="Soak", help="the heading --render gives it (default Soak)")
    args = ap.parse_args(argv)
    if args.render:
        print(soak_markdown(json.loads(Path(args.render).read_text()), args.title), end="")
        return
    if not args.out:
        ap.error("--out is required")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.soak:
        command = "python -m earful.serving.loadtest " + " ".join(sys.argv[1:] if argv is None else argv)
        cap = args.soak_requests or int(1000 * args.soak)
        soak(args.bundle, out, args.posts, args.clients, args.soak, cap, command)
        print((out / "soak.md").read_text())
        return
    run(args.bundle, out, args.posts, args.requests, args.time_limit, args.rounds)
    print((out / "loadtest.md").read_text())


if __name__ == "__main__":
    main()
