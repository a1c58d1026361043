"""ASGI middleware in front of the BentoML app: access control, request checks,
overload hints and one structured log line per request.

* With an API key configured, every path but the health/readiness probes needs
  ``Authorization: Bearer <key>``; the comparison is constant-time and the key
  is never logged.
* ``POST /classify`` bodies are read (bounded), checked by
  :func:`earful.serving.api.check_request`, and replayed to BentoML; bad input
  gets a 4xx JSON error naming the field and never reaches BentoML's handler.
* ``/classify`` is a BentoML batchable API, which answers a bare list of
  results; the guard wraps it as ``{"results": [...], "model": {...}}`` and
  rewrites the OpenAPI document (``/docs.json``) to describe that envelope.
* Every ``keepalive_requests``-th response of a worker carries
  ``Connection: close``, so keep-alive clients get spread over the workers
  again (see :mod:`earful.serving.config`).
* Overload answers 503 with a ``Retry-After`` header, so clients back off
  instead of queueing without bound: either ``max_concurrency`` requests are
  already in flight (checked here, before any work), or the adaptive batcher's
  latency budget would be exceeded (BentoML's own 503).
"""

from __future__ import annotations

import hmac
import json
import logging
import os
import time

import bentoml

from earful.serving.api import ClassifyResponse, ClientError, check_request
from earful.serving.config import ServeConfig

OPEN_PATHS = {"/healthz", "/livez", "/readyz"}
RETRY_AFTER_SECONDS = "1"
log = logging.getLogger("earful.access")
posts_per_request = bentoml.metrics.Histogram(
    name="earful_posts_per_request",
    documentation="Posts in each accepted /classify request.",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
)


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


def openapi_with_envelope(spec: dict) -> dict:
    """Describe /classify's real 200 body (the envelope), not the batch list."""
    schema = ClassifyResponse.model_json_schema(ref_template="#/components/schemas/{model}")
    components = spec.setdefault("components", {}).setdefault("schemas", {})
    components.update(schema.pop("$defs", {}))
    components["ClassifyResponse"] = schema
    op = spec.get("paths", {}).get("/classify", {}).get("post", {})
    ok = op.get("responses", {}).get("200", {})
    ok.setdefault("content", {})["application/json"] = {"schema": {"$ref": "#/components/schemas/ClassifyResponse"}}
    return spec


async def _send_json(send, status: int, payload: dict, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
    body = json.dumps(payload).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers + (extra_headers or [])})
    await send({"type": "http.response.body", "body": body})


class Guard:
    def __init__(self, app, config: ServeConfig, model_info: dict):
        self.app = app
        self.config = config
        self.model_info = json.dumps(model_info).encode()
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
            return await _send_json(send, e.status, {"error": e.message})
        record["posts"], body = checked.posts, checked.body
        posts_per_request.observe(record["posts"])
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        headers = [(k, v) for k, v in scope["headers"] if k not in (b"content-type", b"content-length")]
        headers += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        buffered = _Buffered()
        await self.app({**scope, "headers": headers}, replay, buffered)
        if buffered.start["status"] == 200:
            return await buffered.replay(send, b'{"results":' + b"".join(buffered.chunks) + b',"model":' + self.model_info + b"}")
        return await buffered.replay(send)

    async def _openapi(self, scope, receive, send) -> None:
        buffered = _Buffered()
        await self.app(scope, receive, buffered)
        if buffered.start["status"] == 200:
            spec = openapi_with_envelope(json.loads(b"".join(buffered.chunks)))
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
                return await _send_json(send_logged, 401, {"error": "missing or invalid API key: send Authorization: Bearer <key>"},
                                        [(b"www-authenticate", b'Bearer realm="earful"')])
            if scope["path"] == "/classify" and scope["method"] == "POST":
                if self.in_flight >= self.config.max_concurrency:
                    return await _send_json(send_logged, 503, {"error": f"overloaded: {self.in_flight} requests in flight; retry shortly"})
                self.in_flight += 1
                try:
                    return await self._classify(scope, receive, send_logged, record)
                finally:
                    self.in_flight -= 1
            if scope["path"] == "/docs.json":
                return await self._openapi(scope, receive, send_logged)
            return await self.app(scope, receive, send_logged)
        finally:
            if scope["path"] not in OPEN_PATHS and scope["path"] != "/metrics":
                log.info(json.dumps({"event": "request", "method": scope["method"], "path": scope["path"], "status": record["status"],
                                     "ms": round((time.perf_counter() - started) * 1000, 1), "posts": record["posts"],
                                     "worker": os.getpid()}))
