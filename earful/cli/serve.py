"""``earful serve``: the HTTP service (BentoML) on a bundle."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from earful.cli.common import UsageError


def cmd_serve(args: argparse.Namespace) -> None:
    """Check the bundle here (a clear error beats a server that fails to boot),
    then hand the process over to BentoML with the settings in the environment."""
    from earful.models.bundle import Bundle
    from earful.serving.config import ConfigError, ServeConfig

    bundle = Bundle.load(args.bundle)
    if args.variant not in bundle.variants:
        raise UsageError(f"bundle {bundle.name} has no {args.variant} model; it has {', '.join(bundle.variants)}")
    env = dict(os.environ)
    settings = {
        "EARFUL_BUNDLE": str(bundle.path),
        "EARFUL_VARIANT": args.variant,
        "EARFUL_MAX_POSTS": args.max_posts,
        "EARFUL_MAX_CHARS": args.max_chars,
        "EARFUL_MAX_BATCH": args.max_batch,
        "EARFUL_MAX_LATENCY_MS": args.max_latency_ms,
        "EARFUL_MAX_CONCURRENCY": args.max_concurrency,
        "EARFUL_WORKERS": args.workers,
        "EARFUL_THREADS": args.threads,
        "EARFUL_KEEPALIVE_REQUESTS": args.keepalive_requests,
        "EARFUL_RUN_OVERHEAD_TOKENS": args.run_overhead_tokens,
        "EARFUL_TRACE_CLASSIFY": "1" if args.trace_classify else None,
        "EARFUL_API_KEY_FILE": args.api_key_file,
    }
    env.update({k: str(v) for k, v in settings.items() if v is not None})
    env.setdefault("BENTOML_HOME", str(Path.home() / ".cache" / "earful" / "bentoml"))
    os.environ.update(env)  # the settings the service will read: a mistake is one line here, not a worker's traceback
    try:
        ServeConfig.from_env()
    except ConfigError as e:
        raise UsageError(str(e)) from None
    if args.host not in ("127.0.0.1", "localhost", "::1") and not (env.get("EARFUL_API_KEY") or args.api_key_file):
        print(
            f"earful serve: warning: listening on {args.host} without an API key "
            "(set EARFUL_API_KEY or --api-key-file)",
            file=sys.stderr,
        )
    argv = [
        sys.executable,
        "-m",
        "bentoml",
        "serve",
        "earful.serving.service:Classifier",
        "--host",
        args.host,
        "--port",
        str(args.port),
    ]
    sys.stdout.flush()
    os.execve(sys.executable, argv, env)


def register(sub: argparse._SubParsersAction) -> None:
    """Add the serve command."""
    p = sub.add_parser("serve", help="run the HTTP classify service (BentoML)")
    p.add_argument(
        "--host",
        default=os.environ.get("EARFUL_HOST", "127.0.0.1"),
        help="bind address (default 127.0.0.1: local connections only)",
    )
    p.add_argument("--port", type=int, default=int(os.environ.get("EARFUL_PORT", "3000")))
    p.add_argument("--bundle", default=os.environ.get("EARFUL_BUNDLE"), help="bundle folder (default: models/default)")
    p.add_argument("--variant", choices=("int8", "fp32"), default=os.environ.get("EARFUL_VARIANT", "int8"))
    p.add_argument("--max-posts", type=int, help="posts per request (default 256)")
    p.add_argument("--max-chars", type=int, help="characters per post (default 10000)")
    p.add_argument("--max-batch", type=int, help="largest batch the adaptive batcher forms (default 64)")
    p.add_argument(
        "--max-latency-ms", type=int, help="queueing budget before a request is refused with 503 (default 3000)"
    )
    p.add_argument("--max-concurrency", type=int, help="requests in flight before new ones get 503 (default 512)")
    p.add_argument("--workers", type=int, help="model worker processes (default 2 on 2+ cores, else 1)")
    p.add_argument(
        "--threads", type=int, help="cores per worker: onnxruntime runs at a time (default: cores / workers)"
    )
    p.add_argument(
        "--keepalive-requests",
        type=int,
        help="a worker closes the connection of every Nth response, so keep-alive clients spread over the workers "
        "(default 50; 0 = never)",
    )
    p.add_argument(
        "--run-overhead-tokens",
        type=int,
        help="a model run's fixed cost in padded tokens, for cutting batches into runs "
        "(default 0: measured at start-up)",
    )
    p.add_argument(
        "--trace-classify",
        action="store_true",
        help="give /classify requests OpenTelemetry spans too (off by default: they cost ~6%% of throughput and no "
        "exporter is set)",
    )
    p.add_argument("--api-key-file", help="require this file's key as a Bearer token (or set EARFUL_API_KEY)")
    p.set_defaults(func=cmd_serve)
