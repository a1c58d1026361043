"""The real service on 127.0.0.1 against hostile and odd input: nesting, cut emoji, language hints, made-up paths,
its documentation. Every request loop is bounded and targets loopback only."""

import json
import re
import time

import httpx
import pytest
from test_service import Server

MARKER = "zebra-quartz-marker"


@pytest.fixture(scope="module")
def svc(tiny_bundle, tmp_path_factory):
    s = Server(tiny_bundle, tmp_path_factory.mktemp("svc_hostile"), "hostile", "--max-posts", "8")
    yield s
    s.stop()


def _in_progress(url: str) -> dict[str, float]:
    found = re.findall(r"^bentoml_service_request_in_progress\{(.*?)\} (\S+)$", httpx.get(url + "/metrics").text, re.M)
    return {labels: float(v) for labels, v in found}


def test_deeply_nested_json_gets_a_fast_400_and_leaves_no_request_in_progress(svc):
    for depth in (1_000, 100_000):
        body = b'{"posts": ' + b"[" * depth + b"]" * depth + b"}"
        started = time.perf_counter()
        r = svc.post(body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400 and "nested too deeply" in r.json()["error"]
        assert time.perf_counter() - started < 5
    assert svc.post({"posts": [{"text": "still answering"}]}).status_code == 200
    assert _in_progress(svc.url) and all(v == 0 for v in _in_progress(svc.url).values())


def test_a_cut_emoji_is_scored_with_the_bad_code_point_replaced(svc):
    body = '{"posts": [{"text": "emoji cut \\ud83d here %s", "id": "a"}]}' % MARKER
    r = svc.post(body.encode(), headers={"Content-Type": "application/json"})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["status"] == "ok" and r.json()["results"][0]["id"] == "a"
    r = svc.post(b'{"posts": [{"text": "fine", "id": "x\\udc00"}]}', headers={"Content-Type": "application/json"})
    assert r.status_code == 400 and "posts[0].id" in r.json()["error"]


def test_language_hints_are_iso_codes_case_normalised(svc):
    r = svc.post({"posts": [{"text": "gracias", "lang": "ES"}, {"text": "danke", "lang": " de "}]})
    assert r.status_code == 200, r.text
    assert [x["lang"]["code"] for x in r.json()["results"]] == ["es", "de"]
    before = httpx.get(svc.url + "/metrics").text
    for hint in ("english", "xx", "en-US", "😀", "", "und", "<script>"):
        r = svc.post({"posts": [{"text": "hello", "lang": hint}]})
        assert r.status_code == 400 and "posts[0].lang" in r.json()["error"], (hint, r.text)
    after = httpx.get(svc.url + "/metrics").text
    assert 'label="english"' not in after and 'label="xx"' not in after
    assert len(re.findall("^earful_predicted_labels_total", after, re.M)) == len(
        re.findall("^earful_predicted_labels_total", before, re.M)
    )


def test_made_up_paths_add_no_metric_series(svc):
    count = len(httpx.get(svc.url + "/metrics").text.splitlines())
    for i in range(20):
        assert httpx.get(f"{svc.url}/probe-{i}").status_code == 404
        assert httpx.get(f"{svc.url}/static_content/probe-{i}.js").status_code == 404
    metrics = httpx.get(svc.url + "/metrics").text
    assert "probe-" not in metrics
    assert len(metrics.splitlines()) < count + 40  # one /not-found series set, not forty
    assert httpx.get(svc.url + "/static_content/swagger-ui.css").status_code == 200


def test_the_api_page_loads_nothing_from_outside_and_names_earful(svc):
    from earful import __version__

    page = httpx.get(svc.url + "/").text
    assert f"earful {__version__}" in page and "BentoML" not in page
    assert "://" not in page  # every script, style and link is served by the service itself
    for ref in re.findall(r'(?:src|href)="([^"]+)"', page):
        assert httpx.get(svc.url + "/" + ref.removeprefix("./")).status_code == 200, ref
    spec = httpx.get(svc.url + "/docs.json").json()
    assert spec["info"]["title"] == "earful" and spec["info"]["version"] == __version__
    assert "://" not in spec["info"]["description"] and "BentoML" not in json.dumps(spec["tags"])
    assert {"200", "400", "401", "413", "503"} <= set(spec["paths"]["/classify"]["post"]["responses"])
    assert spec["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"


def test_logs_hold_no_post_text_and_no_error_for_bad_input(svc):
    bodies = [
        '{"posts": [{"text": "%s \\ud83d"}]}' % MARKER,
        '{"posts": [{"text": "%s", "lang": "klingon"}]}' % MARKER,
        '{"posts": [{"text": "%s", "id": 5}]}' % MARKER,
        '{"posts": [{"text": "%s"' % MARKER,
        '{"posts": [{"text": "%s", "extra": "%s"}]}' % (MARKER, MARKER),
    ]
    for body in bodies:
        svc.post(body.encode(), headers={"Content-Type": "application/json"})
    logs = svc.logs()
    assert MARKER not in logs
    assert "Traceback" not in logs and "[ERROR]" not in logs and '"level": "ERROR"' not in logs


def test_a_failure_inside_answers_500_and_logs_where_but_not_the_request(caplog):
    import asyncio
    import logging

    from earful.serving.config import ServeConfig
    from earful.serving.guard import Guard

    async def broken_app(scope, receive, send):
        await receive()
        raise RuntimeError(f"something broke on {MARKER}")

    sent = []

    async def receive():
        return {"type": "http.request", "body": ('{"posts": [{"text": "%s"}]}' % MARKER).encode(), "more_body": False}

    async def send(message):
        sent.append(message)

    guard = Guard(broken_app, ServeConfig(), {"name": "m", "version": "1"})
    scope = {"type": "http", "method": "POST", "path": "/classify", "headers": [], "query_string": b""}
    with caplog.at_level(logging.INFO, logger="earful"):
        asyncio.run(guard(scope, receive, send))
    assert sent[0]["status"] == 500 and b"internal error" in sent[1]["body"]
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert '"error": "RuntimeError"' in logged and "test_service_hostile.py:" in logged
    assert MARKER not in logged
    assert guard.in_flight == 0
