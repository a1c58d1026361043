"""The BentoML services behind ``earful serve``.

``POST /classify`` takes ``{"posts": [...]}`` and is a BentoML *batchable* API:
BentoML's adaptive batcher merges the posts of concurrent requests into batches
of up to ``EARFUL_MAX_BATCH`` posts, waiting at most ``EARFUL_MAX_LATENCY_MS``
(a request that would wait longer gets 503 + Retry-After), and hands each
request back its own slice. Checks, auth, logging and the response envelope
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

import bentoml

from earful.models.bundle import BUNDLE_FILE, resolve_bundle_path
from earful.serving.api import ModelInfo, Post, PostResult
from earful.serving.config import ServeConfig
from earful.serving.guard import Guard

CONFIG = ServeConfig.from_env()
WARMUP_TEXTS = ["warming up the model", "calentando el modelo", "🙂", "x " * 200]
log = logging.getLogger("earful.service")


def _structured_logging() -> None:
    """earful's own log lines are one JSON object each, on stderr."""
    logger = logging.getLogger("earful")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter('{"time": "%(asctime)s", "level": "%(levelname)s", "logger": "%(name)s", "record": %(message)s}'))
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
@bentoml.service(name="earful", workers=CONFIG.workers, logging={"access": {"enabled": False}}, traffic={"timeout": 120},
                 tracing={} if CONFIG.trace_classify else {"excluded_urls": ["/classify"]})
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
        log.info(json.dumps({"event": "model_loaded", "bundle": b.name, "version": b.version, "variant": CONFIG.variant,
                             "run_overhead_tokens": self.predictor.run_overhead_tokens}))

    @bentoml.api(route="/classify", batchable=True, max_batch_size=CONFIG.max_batch_size, max_latency_ms=CONFIG.max_latency_ms)
    def classify(self, posts: list[Post]) -> list[PostResult]:
        """Classify posts; one result per post, in request order. The response
        body is ``{"results": [...], "model": {"name", "version"}}``."""
        if not posts:  # the batcher can hand over an empty batch; onnxruntime must not see it
            return []
        preds = self.predictor.predict([p.text for p in posts], [p.lang for p in posts])
        out = []
        for post, pred in zip(posts, preds):
            if pred.status == "ok":  # labels are None for an untrained head, which counts nothing
                for head, label in (("complaint_type", pred.complaint_type.label), ("sentiment", pred.sentiment.label),
                                    ("troll", None if pred.is_troll is None else ("troll" if pred.is_troll else "not_troll"))):
                    if label is not None:
                        _label_counter(head, label).inc()
            _label_counter("lang", pred.lang.code).inc()
            out.append(PostResult(id=post.id, **pred.to_dict()))
        return out


def _model_info() -> dict:
    info = json.loads((resolve_bundle_path(CONFIG.bundle) / BUNDLE_FILE).read_text())
    return ModelInfo(name=info["name"], version=info["version"]).model_dump()


Classifier.add_asgi_middleware(Guard, config=CONFIG, model_info=_model_info())

# BentoML works out each response's media type from the output's JSON schema,
# which pydantic rebuilds on every response: a fifth of the event loop's time per
# request here. /classify always answers JSON, so say so once.
Classifier.apis["classify"].output_spec.media_type = "application/json"
