"""Service settings, from environment variables (``earful serve`` sets them from its flags).

Defaults for a 2-core machine; the measurements behind them are in docs/performance.md,
"Service tuning": two model workers (one per core) with single-threaded
onnxruntime sessions, batches of up to 64 posts, and a queueing budget of 3 s
past which a request is refused with 503 rather than queued without bound.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


class ConfigError(ValueError):
    pass


def _int(name: str, default: int, minimum: int = 1) -> int:
    raw = os.environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value < minimum:
        raise ConfigError(f"{name}={value} must be at least {minimum}")
    return value


def _bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name, "").strip().lower()
    if raw == "":
        return default
    if raw not in ("0", "1", "true", "false"):
        raise ConfigError(f"{name}={raw!r}: use 1 or 0")
    return raw in ("1", "true")


def default_workers() -> int:
    """Two workers when there are two cores or more, else one.

    On 2 cores, two single-threaded workers served 25–40% more requests/s at 32
    clients than one worker with a two-threaded session: a session's parallel
    sections stall whenever the event loop (HTTP, JSON, batching) takes one of
    the cores, while two independent workers simply share them."""
    return 2 if (os.cpu_count() or 1) >= 2 else 1


@dataclass(frozen=True)
class ServeConfig:
    bundle: str | None = None
    variant: str = "int8"
    max_posts: int = 256
    max_chars: int = 10_000
    api_key: str | None = None
    threads: int = 1
    max_batch_size: int = 64
    #: Queueing budget: a new request gets 503 + Retry-After when the posts in flight in its worker would take
    #: longer to answer at the worker's measured rate (:class:`earful.serving.service.Admission`, which says why
    #: BentoML's batcher no longer judges it).
    max_latency_ms: int = 3_000
    max_concurrency: int = 512
    workers: int = 2
    #: Worker processes share one listening socket, and a burst of new connections
    #: is taken by whichever worker accepts first, often most of them by one;
    #: keep-alive clients then stay there while the other worker idles (32 clients,
    #: 2 workers, CPU seconds per worker: in four of six runs without this, one
    #: worker did between none and half of the other's work). Closing the
    #: connection of every 50th response of a worker lets clients reconnect, and the
    #: idle worker, which accepts first, takes them (three runs: both cores 95-99%
    #: busy), at the price of a reconnect per 50 requests.
    keepalive_requests: int = 50
    #: A model run's fixed cost in padded tokens, which decides how each batch is
    #: cut into onnxruntime runs (:mod:`earful.models.batching`); 0 measures it at
    #: start-up, since it differs several-fold between machines. Set it to fix the
    #: cut, and so int8 probabilities to the last ~1e-3, across restarts.
    run_overhead_tokens: int = 0
    #: BentoML opens an OpenTelemetry span per request even when no exporter is set:
    #: leaving /classify out of tracing gave 6% more requests/s at 32 clients on 2
    #: cores (two alternating pairs of 30-second runs). Latency and counts stay in
    #: /metrics and the JSON access log; set it when a trace exporter is configured.
    trace_classify: bool = False

    @classmethod
    def from_env(cls) -> ServeConfig:
        key = os.environ.get("EARFUL_API_KEY") or None
        key_file = os.environ.get("EARFUL_API_KEY_FILE")
        if key is None and key_file:
            path = Path(key_file)
            if not path.is_file():
                raise ConfigError(f"EARFUL_API_KEY_FILE={key_file}: no such file")
            key = path.read_text().strip() or None
            if key is None:
                raise ConfigError(f"EARFUL_API_KEY_FILE={key_file} is empty")
        variant = os.environ.get("EARFUL_VARIANT", "int8")
        if variant not in ("int8", "fp32"):
            raise ConfigError(f"EARFUL_VARIANT={variant!r}: use int8 or fp32")
        workers = _int("EARFUL_WORKERS", default_workers())
        threads = _int("EARFUL_THREADS", max(1, (os.cpu_count() or 1) // workers))
        return cls(
            bundle=os.environ.get("EARFUL_BUNDLE") or None,
            variant=variant,
            max_posts=_int("EARFUL_MAX_POSTS", cls.max_posts),
            max_chars=_int("EARFUL_MAX_CHARS", cls.max_chars),
            api_key=key,
            threads=threads,
            max_batch_size=_int("EARFUL_MAX_BATCH", cls.max_batch_size),
            max_latency_ms=_int("EARFUL_MAX_LATENCY_MS", cls.max_latency_ms),
            max_concurrency=_int("EARFUL_MAX_CONCURRENCY", cls.max_concurrency),
            workers=workers,
            keepalive_requests=_int("EARFUL_KEEPALIVE_REQUESTS", cls.keepalive_requests, minimum=0),
            run_overhead_tokens=_int("EARFUL_RUN_OVERHEAD_TOKENS", cls.run_overhead_tokens, minimum=0),
            trace_classify=_bool("EARFUL_TRACE_CLASSIFY", cls.trace_classify),
        )
