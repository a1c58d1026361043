"""ASGI middleware in front of the BentoML app: access control, request checks,
overload hints and one structured log line per request.

* With an API key configured, every path but the health/readiness probes needs
  ``Authorization: Bearer <key>``; the comparison is constant-time and the key
  is never logged.
* ``POST /classify`` bodies are read (bounded), checked by
  :func:`earful.serving.api.check_request`, and replayed to BentoML; bad input
  gets a 4xx JSON error naming the field and never reaches BentoML's handler
  (whose validation errors are logged at ERROR with the body in them).
* ``/classify`` is a BentoML batchable API, which answers a bare list of
  results; the guard wraps it as ``{"results": [...], "model": {...}}``. The
  OpenAPI document (``/docs.json``) and the Swagger page (``/``) are earful's
  own (:mod:`earful.serving.docs`).
* A failure inside answers 500 and logs where it happened, never the request's
  content: posts and keys stay out of the logs.
* BentoML labels its request metrics with the raw path; any path the service
  does not have is renamed before them (see :func:`bound_metric_paths`).
* Every ``keepalive_requests``-th response of a worker carries
  ``Connection: close``, so keep-alive clients get spread over the workers
  again (see :mod:`earful.serving.config`).
* Overload answers 503 with a ``Retry-After`` header, so clients back off
  instead of queueing without bound: either ``max_concurrency`` requests are
  already in flight (checked here, before any work), or the posts in flight in
  the worker would take longer than the queueing budget to answer
  (:class:`earful.serving.service.Admission`).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time
import traceback
from pathlib import Path

import bentoml

from earful import __version__
from earful.serving.api import ClientError, check_request
from earful.serving.config import ServeConfig
from earful.serving.docs import openapi_document, swagger_page

OPEN_PATHS = {"/healthz", "/livez", "/readyz"}
#: The scope key under which a checked /classify request carries its post count, so nothing parses it again.
POSTS_KEY = "earful.posts"
#: What a path the service does not have becomes before BentoML's metrics see it (a 404 either way).
UNKNOWN_PATH = "/not-found"
RETRY_AFTER_SECONDS = "1"
log = logging.getLogger("earful.access")
posts_per_request = bentoml.metrics.Histogram(
    name="earful_posts_per_request",
    documentation="Posts in each accepted /classify request.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)


def known_paths() -> frozenset[str]:
    """Every path the service answers: its endpoints, the probes and BentoML's static Swagger UI files."""
    from bentoml._internal import server

    static = Path(server.__file__).parent / "static_content"
    return frozenset(
        {
            "/",
            "/docs.json",
            "/classify",
            "/metrics",
            *OPEN_PATHS,
            *(f"/static_content/{p.name}" for p in static.iterdir()),
        }
    )


def bound_metric_paths(known: frozenset[str]) -> None:
    """Give BentoML's request metrics a bounded set of path labels.

    Its metrics middleware, which runs before any middleware of ours, labels every request with its raw path, so
    requests to made-up paths would add metric series for good; a path outside ``known`` is renamed to
    :data:`UNKNOWN_PATH` on its way in, which answers the same 404."""
    from bentoml._internal.server.http.instruments import RunnerTrafficMetricsMiddleware as Metrics

    if getattr(Metrics.__call__, "earful_bounded", False):
        return
    labelled = Metrics.__call__

    async def call(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"] not in known:
            scope = {**scope, "path": UNKNOWN_PATH, "raw_path": UNKNOWN_PATH.encode()}
        return await labelled(self, scope, receive, send)

    call.earful_bounded = True
    Metrics.__call__ = call


def replaying(body: bytes, receive):
    """An ASGI ``receive`` that hands over ``body`` (already read) as one message, then defers to ``receive``."""
    given = False

    async def replay():
        nonlocal given
        if not given:
            given = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay


class _Buffered:
    """Collects one response (start + body chunks) so it can be rewritten."""

    def __init__(self):
        self.start: dict | None = None
        self.chunks: list[bytes] = []

    async def __call__(self, message):
        if message["type"] == "http.response.start":
            self.start = message
        elif message["type"] == "http.response.body":
            self.chunks.append(message.get("body", b""))

    async def replay(self, send, body: bytes | None = None) -> None:
        body = b"".join(self.chunks) if body is None else body
        headers = [(k, v) for k, v in self.start.get("headers", []) if k.lower() != b"content-length"]
        await send({**self.start, "headers": headers + [(b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})


async def _send(
    send, status: int, body: bytes, content_type: bytes, extra_headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    headers = [(b"content-type", content_type), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


async def send_json(send, status: int, payload: dict, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    await _send(send, status, json.dumps(payload).encode(), b"application/json", extra_headers)


class Guard:
    def __init__(self, app, config: ServeConfig, model_info: dict):
        self.app = app
        self.config = config
        self.model = model_info
        self.model_info = json.dumps(model_info).encode()
        self.page = swagger_page(__version__)
        bound_metric_paths(known_paths())
        self.key = config.api_key.encode() if config.api_key else None
        self.max_body = config.max_posts * (config.max_chars * 4 + 256) + 4096
        self.in_flight = 0
        self.responses = 0

    def _authorized(self, scope) -> bool:
        if self.key is None or scope["path"] in OPEN_PATHS:
            return True
        for name, value in scope.get("headers", []):
            if name == b"authorization":
                scheme, _, token = value.partition(b" ")
                return scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)
        return False

    async def _read_body(self, receive) -> bytes:
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                raise ClientError(400, "client disconnected")
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                raise ClientError(413, f"body exceeds {self.max_body} bytes (max_posts × max_chars); split the request")
            chunks.append(chunk)
            if not message.get("more_body"):
                return b"".join(chunks)

    async def _classify(self, scope, receive, send, record: dict) -> None:
        """Check the body, replay it to BentoML, wrap the batch list in the envelope."""
        try:
            body = await self._read_body(receive)
            checked = check_request(body, self.config.max_posts, self.config.max_chars)
        except ClientError as e:
            return await send_json(send, e.status, {"error": e.message})
        record["posts"], body = checked.posts, checked.body
        posts_per_request.observe(record["posts"])
        replay = replaying(body, receive)
        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        buffered = _Buffered()
        await self.app({**scope, "headers": headers, POSTS_KEY: checked.posts}, replay, buffered)
        if buffered.start["status"] == 200:
            return await buffered.replay(
                send, b'{"results":' + b"".join(buffered.chunks) + b',"model":' + self.model_info + b"}"
            )
        return await buffered.replay(send)

    async def _openapi(self, scope, receive, send) -> None:
        buffered = _Buffered()
        await self.app(scope, receive, buffered)
        if buffered.start["status"] == 200:
            spec = openapi_document(json.loads(b"".join(buffered.chunks)), __version__, self.model)
            return await buffered.replay(send, json.dumps(spec).encode())
        return await buffered.replay(send)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        record = {"status": 0, "posts": None}

        async def send_logged(message):
            if message["type"] == "http.response.start":
                extra = [(b"retry-after", RETRY_AFTER_SECONDS.encode())] if message["status"] == 503 else []
                self.responses += 1
                if self.config.keepalive_requests and self.responses % self.config.keepalive_requests == 0:
                    extra.append((b"connection", b"close"))
                if extra:
                    message = {**message, "headers": [*message.get("headers", []), *extra]}
                record["status"] = message["status"]
            await send(message)

        try:
            if not self._authorized(scope):
                return await send_json(
                    send_logged,
                    401,
                    {"error": "missing or invalid API key: send Authorization: Bearer <key>"},
                    [(b"www-authenticate", b'Bearer realm="earful"')],
                )
            if scope["path"] == "/classify" and scope["method"] == "POST":
                if self.in_flight >= self.config.max_concurrency:
                    return await send_json(
                        send_logged, 503, {"error": f"overloaded: {self.in_flight} requests in flight; retry shortly"}
                    )
                self.in_flight += 1
                try:
                    return await self._classify(scope, receive, send_logged, record)
                finally:
                    self.in_flight -= 1
            if scope["path"] == "/docs.json":
                return await self._openapi(scope, receive, send_logged)
            if scope["path"] == "/" and scope["method"] in ("GET", "HEAD"):
                return await _send(send_logged, 200, self.page, b"text/html; charset=utf-8")
            return await self.app(scope, receive, send_logged)
        except Exception as e:  # a bug, not the client's doing: answer, and log where without the request's content
            frame = traceback.extract_tb(e.__traceback__)[-1]
            log.error(
                json.dumps(
                    {
                        "event": "internal_error",
                        "path": scope["path"],
                        "error": type(e).__name__,
                        "at": f"{frame.filename}:{frame.lineno}",
                        "worker": os.getpid(),
                    }
                )
            )
            if record["status"] == 0:
                await send_json(send_logged, 500, {"error": "internal error; the server log has the details"})
        finally:
            if scope["path"] not in OPEN_PATHS and scope["path"] != "/metrics":
                log.info(
                    json.dumps(
                        {
                            "event": "request",
                            "method": scope["method"],
                            "path": scope["path"],
                            "status": record["status"],
                            "ms": round((time.perf_counter() - started) * 1000, 1),
                            "posts": record["posts"],
                            "worker": os.getpid(),
                        }
                    )
                )
