"""The real BentoML service on 127.0.0.1 with a tiny bundle: API, limits, auth, bad input, load.

Every request loop here is bounded in count and time and targets loopback only."""

import concurrent.futures as cf
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

KEY = "s3cret-test-key-123"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, bundle, tmp_path, name, *flags, env=None):
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = tmp_path / f"{name}.log"
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "earful.cli",
                "serve",
                "--bundle",
                str(bundle),
                "--port",
                str(self.port),
                "--threads",
                "1",
                *flags,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env={**os.environ, "BENTOML_HOME": str(tmp_path / "bentoml"), **(env or {})},
        )
        deadline = time.time() + 90
        while time.time() < deadline:
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            if self.proc.poll() is not None:
                break
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"service did not become ready:\n{self.log_path.read_text()[-3000:]}")

    def post(self, body, headers=None, **kw):
        return httpx.post(
            self.url + "/classify",
            content=body if isinstance(body, bytes) else None,
            json=None if isinstance(body, bytes) else body,
            headers=headers,
            timeout=60,
            **kw,
        )

    def logs(self) -> str:
        self.log.flush()
        return self.log_path.read_text()

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=20)
        except (ProcessLookupError, subprocess.TimeoutExpired):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.log.close()


@pytest.fixture(scope="module")
def server(tiny_bundle, tmp_path_factory):
    s = Server(
        tiny_bundle,
        tmp_path_factory.mktemp("svc"),
        "open",
        "--max-posts",
        "8",
        "--max-chars",
        "2000",
        "--keepalive-requests",
        "5",
    )
    yield s
    s.stop()


@pytest.fixture(scope="module")
def locked(tiny_bundle, tmp_path_factory):
    d = tmp_path_factory.mktemp("svc_key")
    (d / "key").write_text(KEY + "\n")
    s = Server(
        tiny_bundle,
        d,
        "locked",
        "--api-key-file",
        str(d / "key"),
        "--max-concurrency",
        "2",
        "--trace-classify",
        "--run-overhead-tokens",
        "7",
    )
    yield s
    s.stop()


def test_classify_returns_results_in_order_with_model_info(server):
    r = server.post(
        {
            "posts": [
                {"text": "my order never came", "id": "a"},
                {"text": "gracias", "id": "b", "lang": "es"},
                {"text": ""},
            ]
        }
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == {"name": "tiny-test", "version": "0.0.1"}
    res = body["results"]
    assert [x["id"] for x in res] == ["a", "b", None]
    assert {"complaint_type", "sentiment", "troll", "is_troll", "lang", "truncated", "status"} <= set(res[0])
    assert res[0]["is_troll"] == (
        res[0]["troll"] >= 0.5
    )  # the fixture bundle's threshold: its validation has too few trolls
    assert res[1]["lang"] == {"code": "es", "confidence": 1.0, "source": "hint"}
    assert res[2]["status"] == "empty" and res[2]["troll"] is None and res[2]["is_troll"] is None


def test_classify_is_traced_only_when_asked(server, locked):
    """BentoML names the OpenTelemetry span of a traced request in X-BentoML-Request-ID."""
    body = {"posts": [{"text": "hello"}]}
    assert "x-bentoml-request-id" not in server.post(body).headers
    assert "x-bentoml-request-id" in locked.post(body, headers={"Authorization": f"Bearer {KEY}"}).headers


BAD = [
    (b"", 400, "empty body"),
    (b'{"posts": [', 400, "malformed JSON"),
    (b'{"posts": [{"text": "\xff\xfe"}]}', 400, "not valid UTF-8"),
    (b"[1, 2]", 400, 'JSON object with a "posts" list'),
    (b'{"posts": "hello"}', 400, "posts: must be a list"),
    (b'{"posts": []}', 400, "posts: empty list"),
    (b'{"posts": [{"text": null}]}', 400, "posts[0].text: null, not a string"),
    (b'{"posts": [{"text": 5}]}', 400, "posts[0].text: int, not a string"),
    (b'{"posts": [{"id": "x"}]}', 400, "posts[0].text: missing"),
    (b'{"posts": [{"text": "a", "id": 3}]}', 400, "posts[0].id: must be a string"),
    (b'{"posts": [{"text": "a", "colour": "red"}]}', 400, "unknown field(s) ['colour']"),
    (b'{"posts": [' + b'{"text": "a"},' * 8 + b'{"text": "a"}]}', 413, "9 posts, the limit is 8"),
    (b'{"posts": [{"text": "' + b"a" * 2001 + b'"}]}', 413, "posts[0].text: 2001 characters, the limit is 2000"),
]


@pytest.mark.parametrize("body, status, message", BAD, ids=[b[2] for b in BAD])
def test_bad_input_gets_a_clear_4xx(server, body, status, message):
    r = server.post(body, headers={"Content-Type": "application/json"})
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_client_mistakes_leave_no_error_traceback_in_the_log(server):
    for body, _, _ in BAD:
        server.post(body, headers={"Content-Type": "application/json"})
    logs = server.logs()
    assert "Traceback" not in logs and "[ERROR]" not in logs and '"level": "ERROR"' not in logs
    assert '"path": "/classify", "status": 413' in logs  # and each request is logged as one JSON line


def test_each_worker_logs_the_run_overhead_it_measured_or_was_given(server, locked):
    from earful.serving.loadtest import _logged_overheads

    measured, given = _logged_overheads(server.log_path), _logged_overheads(locked.log_path)
    assert measured and all(isinstance(x, int) and x >= 1 for x in measured)
    assert given and set(given) == {7}


def test_concurrent_single_post_callers_are_batched_and_get_their_own_answers(server):
    def one(i):
        r = server.post({"posts": [{"text": f"order {i} arrived broken", "id": f"p{i}"}]})
        return r.status_code, r.json()["results"][0]["id"] if r.status_code == 200 else None

    with cf.ThreadPoolExecutor(16) as ex:
        out = list(ex.map(one, range(96)))
    assert all(code == 200 for code, _ in out), out
    assert [pid for _, pid in out] == [f"p{i}" for i in range(96)]
    metrics = httpx.get(server.url + "/metrics", timeout=10).text
    sums = [line for line in metrics.splitlines() if line.startswith("bentoml_service_adaptive_batch_size_sum")]
    counts = [line for line in metrics.splitlines() if line.startswith("bentoml_service_adaptive_batch_size_count")]
    assert float(sums[0].split()[-1]) > float(counts[0].split()[-1])  # mean batch > 1 request: batching happened


def test_keep_alive_connections_are_closed_every_nth_response(server):
    # A connection stays with one worker until it is closed, so one of 5 responses must say close;
    # the reconnection may land on the other worker, which closes at its own 5th (so not all of them).
    with httpx.Client(base_url=server.url, timeout=30) as client:
        closing = [client.get("/healthz").headers.get("connection") == "close" for _ in range(5)]
    assert any(closing) and not all(closing)


def test_load_generator_counts_every_answer(server):
    import asyncio

    from earful.serving.loadtest import _level

    result = asyncio.run(_level(server.url + "/classify", ["my order never came", "gracias", "x " * 50], 4, 24, 60))
    assert (result["requests"], result["ok"], result["codes"], result["malformed"]) == (24, 24, {200: 24}, 0)
    assert result["throughput_rps"] > 0 and result["p99_ms"] >= result["p50_ms"] > 0


def test_load_generator_reads_chunked_and_closing_answers():
    import asyncio

    from earful.serving.loadtest import _read_response

    async def read(raw):
        reader = asyncio.StreamReader()
        reader.feed_data(raw)
        reader.feed_eof()
        return await _read_response(reader)

    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"
    assert asyncio.run(read(chunked)) == (200, b"hello world", False)
    closing = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 2\r\nConnection: close\r\nRetry-After: 1\r\n\r\n{}"
    assert asyncio.run(read(closing)) == (503, b"{}", True)


def test_operations_endpoints(server):
    assert httpx.get(server.url + "/healthz").status_code == 200
    assert httpx.get(server.url + "/readyz").status_code == 200
    metrics = httpx.get(server.url + "/metrics").text
    assert 'earful_predicted_labels_total{head="complaint_type"' in metrics
    assert "earful_posts_per_request_bucket" in metrics
    assert "bentoml_service_request_duration_seconds" in metrics
    spec = httpx.get(server.url + "/docs.json").json()
    ok = spec["paths"]["/classify"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert ok == {"$ref": "#/components/schemas/ClassifyResponse"}
    assert set(spec["components"]["schemas"]["ClassifyResponse"]["properties"]) == {"results", "model"}
    assert httpx.get(server.url + "/").status_code == 200  # the Swagger page is served locally


def test_api_key_is_required_everywhere_but_health(locked):
    body = {"posts": [{"text": "hello"}]}
    assert locked.post(body).status_code == 401
    assert locked.post(body, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert locked.post(body, headers={"Authorization": f"Bearer {KEY}"}).status_code == 200
    assert httpx.get(locked.url + "/metrics").status_code == 401
    assert httpx.get(locked.url + "/healthz").status_code == 200
    assert httpx.get(locked.url + "/readyz").status_code == 200
    assert KEY not in locked.logs()


def test_overload_gets_503_with_retry_after(locked):
    headers = {"Authorization": f"Bearer {KEY}"}
    body = {"posts": [{"text": "word " * 300}] * 8}

    def one(_):
        r = locked.post(body, headers=headers)
        return r.status_code, r.headers.get("retry-after")

    with cf.ThreadPoolExecutor(24) as ex:
        out = list(ex.map(one, range(48)))
    codes = {c for c, _ in out}
    assert codes <= {200, 503}, codes
    assert 503 in codes  # max_concurrency 2 cannot take 24 at once
    assert all(ra == "1" for c, ra in out if c == 503)


def test_serve_refuses_a_broken_bundle_before_starting(tmp_path):
    r = subprocess.run(
        [sys.executable, "-m", "earful.cli", "serve", "--bundle", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "not an earful bundle" in r.stderr
