"""serving/monitoring/: the Prometheus rules pass `promtool check rules` and their unit tests
(`promtool test rules`, series that must and must not fire each alert), and every query of the rules and
of the Grafana dashboard names only metrics and labels that the real service exports (scraped from
/metrics of the service on 127.0.0.1) or that the recording rules define. The rules are also run by
promtool on the scraped series themselves, and must give the figures computed here from the scrape.

promtool comes from `make promtool` (which `make test` runs): without it these tests fail, not skip."""

from __future__ import annotations

import concurrent.futures as cf
import json
import math
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families
from test_service import Server

from earful.schema import COMPLAINT_TYPES, SENTIMENTS, TASK_NAMES

MONITORING = Path(__file__).resolve().parents[1] / "serving" / "monitoring"
RULES = MONITORING / "earful-alerts.yml"
RULE_TESTS = MONITORING / "earful-alerts.test.yml"
DASHBOARD = MONITORING / "grafana-dashboard.json"
#: Labels Prometheus itself attaches to every scraped series.
TARGET_LABELS = {"job", "instance"}
#: Label values the service can report per head (languages are any ISO 639-1 code, so not listed).
HEAD_LABELS = {"complaint_type": set(COMPLAINT_TYPES), "sentiment": set(SENTIMENTS), "troll": {"troll", "not_troll"}}

PROMQL_WORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset"}
PROMQL_WORDS |= {"bool", "inf", "nan"}
#: Aggregations, which may take their label list before the parenthesis (`sum by (job) (...)`).
PROMQL_WORDS |= {"sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values", "bottomk"}
PROMQL_WORDS |= {"topk", "quantile"}


def promtool() -> str:
    """promtool from .venv/bin (where `make promtool` puts it) or PATH; a missing one fails the test."""
    venv_bin = str(Path(sys.executable).parent)
    found = shutil.which("promtool", path=os.pathsep.join([venv_bin, os.environ.get("PATH", "")]))
    if not found:
        pytest.fail("promtool is missing: run `make promtool` (make test does) to install it into .venv/bin")
    return found


def run_promtool(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([promtool(), *args], cwd=cwd, capture_output=True, text=True, timeout=300)


def rule_exprs() -> dict[str, str]:
    """Each rule's name (record or alert) and expression."""
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return {rule.get("record") or rule["alert"]: rule["expr"] for group in groups for rule in group["rules"]}


def recorded_names() -> set[str]:
    return {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}


def dashboard_exprs() -> list[str]:
    """Every PromQL query of the dashboard: panel targets and the query variables."""
    board = json.loads(DASHBOARD.read_text())
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for var in board["templating"]["list"]:
        if var["type"] == "query":
            query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
            exprs.append(re.fullmatch(r"label_values\((.+),\s*\w+\)", query).group(1))
    return exprs


def concrete(expr: str) -> str:
    """A dashboard query with Grafana's variables replaced as Grafana would, so that PromQL tools read it."""
    return expr.replace("$__rate_interval", "5m").replace('"$job"', '".+"')


def _strip(expr: str) -> str:
    """The expression without strings, label matchers, ranges, label lists and offsets: what remains is
    metric names, function names, keywords, numbers and operators."""
    s = re.sub(r'"(?:\\.|[^"\\])*"|\'(?:\\.|[^\'\\])*\'', '""', expr)
    s = re.sub(r"\{[^}]*\}", " ", s)
    s = re.sub(r"\[[^\]]*\]", " ", s)
    s = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", r"\1 ", s)
    s = re.sub(r"\boffset\s+-?\w+", " ", s)
    return re.sub(r"(?<![\w:])\d+(\.\d*)?([eE][+-]?\d+)?", " ", s)


def metric_names(expr: str) -> set[str]:
    """Metric names an expression selects (identifiers that are not functions or keywords)."""
    s = _strip(expr)
    return {
        m.group()
        for m in re.finditer(r"[A-Za-z_:][\w:]*", s)
        if m.group().lower() not in PROMQL_WORDS and not re.match(r"\s*\(", s[m.end() :])
    }


def selectors(expr: str) -> list[tuple[str, list[tuple[str, str, str]]]]:
    """Each ``name{matchers}`` of an expression: the name and its (label, operator, value) matchers."""
    out = []
    for m in re.finditer(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}", expr):
        matchers = re.findall(r'([A-Za-z_]\w*)\s*(=~|!~|!=|=)\s*"((?:\\.|[^"\\])*)"', m.group(2))
        out.append((m.group(1), matchers))
    return out


def test_metric_name_extraction_finds_selected_metrics_only():
    expr = (
        'histogram_quantile(0.99, sum by (job, le) (rate(foo_bucket{a="x", b=~"y|z"}[5m] offset 1h)))'
        " / ignoring (label) group_left bar:baz:rate1h * 3600 > 1e3 and on (job) up == 0"
    )
    assert metric_names(expr) == {"foo_bucket", "bar:baz:rate1h", "up"}
    assert selectors(expr) == [("foo_bucket", [("a", "=", "x"), ("b", "=~", "y|z")])]
    assert metric_names(concrete('topk(10, m{job=~"$job"}) + rate(n[$__rate_interval])')) == {"m", "n"}


def test_rules_pass_promtool_check():
    r = run_promtool("check", "rules", RULES.name, cwd=MONITORING)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(rule_exprs())} rules found" in r.stdout


def test_rules_pass_their_promtool_unit_tests():
    r = run_promtool("test", "rules", RULE_TESTS.name, cwd=MONITORING)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout


def test_every_alert_has_a_firing_and_a_silent_unit_test():
    """Each alert appears in an alert_rule_test that expects it to fire (exp_alerts not empty); the series
    that must not fire are the other jobs of the same test (promtool compares the full set of alerts)."""
    alerts = {r["alert"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load(RULE_TESTS.read_text())["tests"]
    firing = {t["alertname"] for test in tests for t in test.get("alert_rule_test", []) if t["exp_alerts"]}
    assert firing == alerts
    for test in tests:
        jobs = {re.search(r'job="([^"]+)"', s["series"]).group(1) for s in test["input_series"]}
        for t in test.get("alert_rule_test", []):
            fired = {a["exp_labels"]["job"] for a in t["exp_alerts"]}
            assert fired < jobs, (t["alertname"], "needs series that must not fire beside those that fire")


def test_alerts_carry_summary_description_severity_and_a_runbook_section():
    readme = (MONITORING / "README.md").read_text()
    anchors = {
        re.sub(r"[^\w-]", "", h.strip().lower().replace(" ", "-")) for h in re.findall(r"^#+ (.+)$", readme, re.M)
    }
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            if "alert" not in rule:
                continue
            assert rule["labels"]["severity"] in {"warning", "critical"}
            assert {"summary", "description", "runbook"} <= set(rule["annotations"]), rule["alert"]
            path, _, anchor = rule["annotations"]["runbook"].partition("#")
            assert path == "serving/monitoring/README.md" and anchor in anchors, (rule["alert"], anchor)


def test_dashboard_is_grafana_json_with_a_datasource_variable():
    board = json.loads(DASHBOARD.read_text())
    assert board["title"] and board["uid"] and isinstance(board["schemaVersion"], int)
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        assert {"h", "w", "x", "y"} <= set(panel["gridPos"]) and panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}" and target["expr"].strip()
    titles = " ".join(p["title"].lower() for p in board["panels"])
    for figure in ("complaint types", "negative share", "requests per second", "server errors", "latency"):
        assert figure in titles


def test_dashboard_queries_parse(tmp_path):
    """promtool parses each dashboard query (as a recording rule), its Grafana variables filled in."""
    rules = [{"record": f"dashboard:query_{i}", "expr": concrete(e)} for i, e in enumerate(dashboard_exprs())]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    r = run_promtool("check", "rules", path.name, cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr


# The service, scraped ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scrape(tiny_bundle, tmp_path_factory) -> str:
    """/metrics of the real service after answered requests, a client mistake and refusals for overload
    (a concurrency cap of 1 and concurrent callers), so every status the rules select has a series."""
    server = Server(tiny_bundle, tmp_path_factory.mktemp("svc_monitoring"), "monitoring", "--max-concurrency", "1")
    try:
        posts = [{"text": t} for t in ("you charged me twice, refund now", "the app crashes", "thanks!", "hola")]
        assert server.post({"posts": posts}).status_code == 200
        assert server.post({"posts": []}).status_code == 400
        body = {"posts": [{"text": "word " * 300}] * 8}
        statuses: set[int] = set()
        with cf.ThreadPoolExecutor(12) as pool:
            for _ in range(10):  # bounded: stop once an overload refusal has been seen
                statuses |= set(pool.map(lambda _: server.post(body).status_code, range(24)))
                if 503 in statuses:
                    break
        assert 503 in statuses and statuses <= {200, 503}, statuses
        r = httpx.get(server.url + "/metrics", timeout=30)
        assert r.status_code == 200
        return r.text
    finally:
        server.stop()


def exported(scrape: str) -> dict[str, list[dict[str, str]]]:
    """Each exported sample name (histograms as their _bucket, _sum, _count) and the label sets it has."""
    out: dict[str, list[dict[str, str]]] = {}
    for family in text_string_to_metric_families(scrape):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(dict(sample.labels))
    return out


def test_queries_use_only_exported_or_recorded_metrics_and_labels(scrape):
    series = exported(scrape)
    recorded = recorded_names()
    assert {"earful_predicted_labels_total", "bentoml_service_request_total"} <= set(series)
    queries = {f"rule {name}": e for name, e in rule_exprs().items()}
    queries |= {f"dashboard query {i}": concrete(e) for i, e in enumerate(dashboard_exprs())}
    for where, expr in queries.items():
        unknown = metric_names(expr) - set(series) - recorded
        assert not unknown, f"{where} names metrics the service does not export: {sorted(unknown)}"
        for name, matchers in selectors(expr):
            for label, op, value in matchers:
                if name in series:  # a scraped metric: the label exists on it, an exact value is exported
                    names = set().union(*series[name]) | TARGET_LABELS
                    assert label in names, f"{where}: {name} has no label {label} ({sorted(names)})"
                    if op == "=" and label not in TARGET_LABELS:
                        values = {labels.get(label) for labels in series[name]}
                        assert value in values, f"{where}: {name}{{{label}={value!r}}} is not exported"
                if label == "head":  # recorded series keep head and label: they must be the schema's
                    assert set(value.split("|")) <= set(TASK_NAMES), f"{where}: head {value!r}"
                if label == "label" and op in ("=", "=~"):
                    heads = {lab: val for lab, _, val in matchers}.get("head", "").split("|")
                    known = set().union(*(HEAD_LABELS.get(h, set()) for h in heads if h in HEAD_LABELS))
                    if known:
                        assert set(value.split("|")) <= known, f"{where}: label {value!r} of {heads}"


def _series_line(name: str, labels: dict[str, str], values: str) -> dict:
    inner = ",".join(f'{k}="{v}"' for k, v in sorted({**labels, "job": "live"}.items()))
    return {"series": f"{name}{{{inner}}}", "values": values}


def test_rules_give_the_figures_of_the_scraped_series(scrape, tmp_path):
    """The recording rules, run by promtool on the scraped series (each counter growing every second by its
    scraped value, for 3 hours), give the shares and rates computed here from the same scrape. Whole
    requests and posts per second keep every rate over the last hour and 5 minutes exact; ratios are compared to 6
    decimals."""
    counters = ["earful_predicted_labels_total", "bentoml_service_request_total"]
    counters.append("bentoml_service_request_duration_seconds_bucket")
    inputs = [
        _series_line(name, labels, f"0+{round(value) * 60}x180")
        for family in text_string_to_metric_families(scrape)
        for name, labels, value in ((s.name, s.labels, s.value) for s in family.samples)
        if name in counters
    ]
    predicted: dict[tuple[str, str], int] = {}  # posts per (head, label)
    codes: dict[str, int] = {}  # /classify requests per status
    for family in text_string_to_metric_families(scrape):
        for s in family.samples:
            if s.name == "earful_predicted_labels_total":
                predicted[(s.labels["head"], s.labels["label"])] = round(s.value)
            elif s.name == "bentoml_service_request_total" and s.labels.get("service_name") == "earful":
                if s.labels.get("endpoint") == "/classify":
                    code = s.labels["http_response_code"]
                    codes[code] = codes.get(code, 0) + round(s.value)
    head_total: dict[str, int] = {}
    for (head, _), v in predicted.items():
        head_total[head] = head_total.get(head, 0) + v
    assert codes.get("503") and codes.get("200") and head_total.get("complaint_type")

    def micro(x: float) -> float:
        return float(math.floor(x * 1e6 + 0.5))  # PromQL's round(x * 1e6)

    total = sum(codes.values())
    tests = [
        {
            "expr": "round(job_head_label:earful_predicted_labels:share1h * 1e6)",
            "eval_time": "3h",
            "exp_samples": [
                {"labels": f'{{head="{h}",job="live",label="{lab}"}}', "value": micro(v / head_total[h])}
                for (h, lab), v in sorted(predicted.items())
                if head_total[h]
            ],
        },
        {  # the same mix throughout, so the baseline equals the last hour (up to rounding: rate() over 7d)
            "expr": "abs(job_head_label:earful_predicted_labels:share7d"
            " - job_head_label:earful_predicted_labels:share1h) < bool 1e-9",
            "eval_time": "3h",
            "exp_samples": [
                {"labels": f'{{head="{h}",job="live",label="{lab}"}}', "value": 1}
                for (h, lab) in sorted(predicted)
                if h in ("complaint_type", "sentiment") and head_total[h]
            ],
        },
        {
            "expr": "round(job_code:earful_classify_requests:rate5m * 1e6)",
            "eval_time": "3h",
            "exp_samples": [
                {"labels": f'{{http_response_code="{c}",job="live"}}', "value": micro(v)} for c, v in codes.items()
            ],
        },
        {
            "expr": "round(job:earful_classify_overloaded:ratio_rate5m * 1e6)",
            "eval_time": "3h",
            "exp_samples": [{"labels": '{job="live"}', "value": micro(codes["503"] / total)}],
        },
        {  # the latency rule finds the scraped histogram: one p99 for the job
            "expr": "count by (job) (job:earful_classify_latency_seconds:p99_5m >= 0)",
            "eval_time": "3h",
            "exp_samples": [{"labels": '{job="live"}', "value": 1}],
        },
    ]
    spec = {
        "rule_files": [str(RULES)],
        "evaluation_interval": "1m",
        "tests": [{"interval": "1m", "input_series": inputs, "promql_expr_test": tests}],
    }
    (tmp_path / "live.test.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    r = run_promtool("test", "rules", "live.test.yml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr[-4000:]
