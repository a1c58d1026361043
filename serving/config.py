"""Service settings, from environment variables (``earful serve`` sets them from its flags).

Tuned for a 2-core machine; the reasoning is in the README's service section:
one model worker whose onnxruntime session uses every core, batches of up to 64
posts, and a queueing budget of 3 s past which a request is refused with 503
rather than queued without bound.
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


@dataclass(frozen=True)
class ServeConfig:
    bundle: str | None = None
    variant: str = "int8"
    max_posts: int = 256
    max_chars: int = 10_000
    api_key: str | None = None
    threads: int | None = None
    max_batch_size: int = 64
    max_latency_ms: int = 3_000
    max_concurrency: int = 512
    workers: int = 1

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
        threads = _int("EARFUL_THREADS", 0, minimum=0) or None
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
            workers=_int("EARFUL_WORKERS", cls.workers),
        )
