"""The BentoML services behind ``earful serve``.

``POST /classify`` takes ``{"posts": [...]}`` and is a BentoML *batchable* API:
BentoML's adaptive batcher merges the posts of concurrent requests into batches
of up to ``EARFUL_MAX_BATCH`` posts and hands each request back its own slice.
:class:`Admission` keeps the queueing budget ``EARFUL_MAX_LATENCY_MS`` (past it a
new request gets 503 + Retry-After) and feeds a larger request to the batcher in
parts. Checks, auth, logging and the response envelope
(``{"results": [...], "model": {...}}``) live in :mod:`earful.serving.guard`.

One service on purpose, each worker process holding both the HTTP layer and a
model: a separate model service behind ``bentoml.depends`` costs an extra
serialisation hop per request on a 2-core machine, and
bentoml 1.4.39's dependency client closes its pooled session every 100 calls
while other calls are in flight (they fail as "Server disconnected").

Settings come from the environment (:class:`earful.serving.config.ServeConfig`).
"""

from __future__ import annotations

import functools
import json
import logging
import math
import time

import bentoml

from earful.models.bundle import BUNDLE_FILE, resolve_bundle_path
from earful.serving.api import ModelInfo, Post, PostResult
from earful.serving.config import ServeConfig
from earful.serving.guard import POSTS_KEY, Guard, _Buffered, replaying, send_json

CONFIG = ServeConfig.from_env()
WARMUP_TEXTS = ["warming up the model", "calentando el modelo", "🙂", "x " * 200]
#: Seconds before BentoML gives up on a request.
REQUEST_TIMEOUT_S = 120
#: BentoML's batcher refuses requests on an estimate that misjudges earful's (see :class:`Admission`), so its
#: own latency limit is set beyond any request's life (a day); the queueing budget is kept by Admission instead.
BATCHER_MAX_LATENCY_MS = 24 * 3600 * 1000
#: Seconds of busy time over which :class:`Admission` measures a worker's rate (older time fades by e each window).
RATE_WINDOW_S = 10.0
log = logging.getLogger("earful.service")


def _structured_logging() -> None:
    """earful's own log lines are one JSON object each, on stderr."""
    logger = logging.getLogger("earful")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(
            logging.Formatter(
                '{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", "record": %(message)s}'
            )
        )
        logger.addHandler(handler)
        logger.setLevel(logging.INFO)
        logger.propagate = False


_structured_logging()

predicted_labels = bentoml.metrics.Counter(
    name="earful_predicted_labels_total",
    documentation="Posts classified, by head and predicted label (watch for spikes per complaint type).",
    labelnames=["head", "label"],
)


@functools.cache
def _label_counter(head: str, label: str):
    """The counter child of one head and label (looked up once, not per post)."""
    return predicted_labels.labels(head=head, label=label)


# BentoML's own access log is off: the guard logs one JSON line per request instead.
# The concurrency cap lives in the guard, which answers 503 + Retry-After (BentoML's own cap says 429).
# /classify is left out of OpenTelemetry tracing unless asked for (see ServeConfig.trace_classify).
@bentoml.service(
    name="earful",
    workers=CONFIG.workers,
    logging={"access": {"enabled": False}},
    traffic={"timeout": REQUEST_TIMEOUT_S},
    tracing={} if CONFIG.trace_classify else {"excluded_urls": ["/classify"]},
)
class Classifier:
    """earful: complaint type, sentiment, language and troll likelihood per social post.

    The model is loaded and warmed in ``__init__``, so /readyz turns green only
    when it can answer and the first request is not slow."""

    def __init__(self) -> None:
        from earful.models.predictor import Predictor

        self.predictor = Predictor.load(CONFIG.bundle, variant=CONFIG.variant, threads=CONFIG.threads)
        self.predictor.predict(WARMUP_TEXTS)
        if CONFIG.run_overhead_tokens:
            self.predictor.run_overhead_tokens = CONFIG.run_overhead_tokens
        else:
            self.predictor.measure_run_cost()
        b = self.predictor.bundle
        log.info(
            json.dumps(
                {
                    "event": "model_loaded",
                    "bundle": b.name,
                    "version": b.version,
                    "variant": CONFIG.variant,
                    "run_overhead_tokens": self.predictor.run_overhead_tokens,
                }
            )
        )

    @bentoml.api(
        route="/classify", batchable=True, max_batch_size=CONFIG.max_batch_size, max_latency_ms=BATCHER_MAX_LATENCY_MS
    )
    def classify(self, posts: list[Post]) -> list[PostResult]:
        """Classify posts; one result per post, in request order. The response
        body is ``{"results": [...], "model": {"name", "version"}}``."""
        if not posts:  # the batcher can hand over an empty batch; onnxruntime must not see it
            return []
        preds = self.predictor.predict([p.text for p in posts], [p.lang for p in posts])
        out = []
        for post, pred in zip(posts, preds, strict=True):
            if pred.status == "ok":  # labels are None for an untrained head, which counts nothing
                for head, label in (
                    ("complaint_type", pred.complaint_type.label),
                    ("sentiment", pred.sentiment.label),
                    ("troll", None if pred.is_troll is None else ("troll" if pred.is_troll else "not_troll")),
                ):
                    if label is not None:
                        _label_counter(head, label).inc()
            _label_counter("lang", pred.lang.code).inc()
            out.append(PostResult(id=post.id, **pred.to_dict()))
        return out


def _model_info() -> dict:
    info = json.loads((resolve_bundle_path(CONFIG.bundle) / BUNDLE_FILE).read_text())
    return ModelInfo(name=info["name"], version=info["version"]).model_dump()


class Admission:
    """Between the guard and BentoML: refuses a new /classify request with 503 when the posts in flight in this
    worker would take longer than ``budget_s`` to answer at the rate it has answered posts lately, and sends
    BentoML a request of more than ``max_batch_size`` posts as parts of at most that many, each once the one
    before is answered.

    BentoML's batcher refused on an estimate that misjudges earful's requests (it counts requests, not posts, and
    the later parts of a request it splits keep the request's arrival time), so it refused large valid requests
    always and small ones in bursts; a measured rate of posts decides here instead. docs/performance.md has the
    causes and the soaks."""

    def __init__(self, app, max_batch_size: int, budget_s: float):
        self.app = app
        self.max_batch_size = max_batch_size
        self.budget_s = budget_s
        self.queued = 0  # posts in the parts in flight
        self._answered = 0.0  # posts answered, and seconds with parts in flight, both weighted by recency
        self._busy_s = 0.0
        self._last = time.perf_counter()

    def _tick(self) -> None:
        """Count the time since the last change as busy while parts were in flight, fading older figures."""
        now = time.perf_counter()
        if self.queued:
            keep = math.exp(-(now - self._last) / RATE_WINDOW_S)
            self._answered *= keep
            self._busy_s = self._busy_s * keep + (now - self._last)
        self._last = now

    def backlog_s(self) -> float:
        """Seconds to answer the posts in flight at the rate measured so far (0 before any is answered)."""
        self._tick()
        return self.queued * self._busy_s / self._answered if self._answered else 0.0

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["path"] != "/classify" or scope["method"] != "POST":
            return await self.app(scope, receive, send)
        backlog = self.backlog_s()
        if backlog > self.budget_s:
            error = f"overloaded: {backlog:.1f} s of posts queued, the budget is {self.budget_s:g} s; retry shortly"
            return await send_json(send, 503, {"error": error})
        body = (await receive()).get("body", b"")  # the guard replays the checked body as one message
        if scope[POSTS_KEY] <= self.max_batch_size:
            return await self._part(scope, body, scope[POSTS_KEY], receive, send)
        posts = json.loads(body)["posts"]
        results = []
        for i in range(0, len(posts), self.max_batch_size):
            buffered = _Buffered()
            part = posts[i : i + self.max_batch_size]
            await self._part(scope, json.dumps({"posts": part}).encode(), len(part), receive, buffered)
            if buffered.start["status"] != 200:
                return await buffered.replay(send)
            results.append(b"".join(buffered.chunks).strip()[1:-1])  # a JSON list's items
        await buffered.replay(send, b"[" + b",".join(results) + b"]")

    async def _part(self, scope, body: bytes, n_posts: int, receive, send) -> None:
        """One request to BentoML with ``body``, its posts counted in :attr:`queued` while in flight."""
        replay = replaying(body, receive)
        headers = [(k, v) for k, v in scope["headers"] if k != b"content-length"]
        headers.append((b"content-length", str(len(body)).encode()))
        self._tick()
        self.queued += n_posts
        try:
            await self.app({**scope, "headers": headers}, replay, send)
        finally:
            self._tick()
            self.queued -= n_posts
            self._answered += n_posts


# Starlette runs middlewares in the order added: the guard checks a request before Admission sees it.
Classifier.add_asgi_middleware(Guard, config=CONFIG, model_info=_model_info())
Classifier.add_asgi_middleware(Admission, max_batch_size=CONFIG.max_batch_size, budget_s=CONFIG.max_latency_ms / 1000)

# BentoML works out each response's media type from the output's JSON schema,
# which pydantic rebuilds on every response: a fifth of the event loop's time per
# request here. /classify always answers JSON, so say so once.
Classifier.apis["classify"].output_spec.media_type = "application/json"
