"""The Grafana dashboard, the alert rules and Prometheus's scrape targets, checked against
the code: every metric they name is one shared/metrics.py exports, and every service the
compose file runs is scraped on the port it listens on."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from tests.support.metrics import exported_names

ROOT = Path(__file__).resolve().parents[2]
OBSERVABILITY = ROOT / "ops" / "observability"
DASHBOARD = json.loads((OBSERVABILITY / "grafana" / "dashboards" / "a6pay.json").read_text())
RULES = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
PROMETHEUS = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())

PROMETHEUS_OWN = {"up"}  # series Prometheus makes itself for every target
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or",
             "unless", "bool", "offset", "inf", "nan"}
_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")  # label matchers
_RANGES = re.compile(r"\[[^\]]*\]")  # [5m], [1h:1m]
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*(?=\s*(\()?)")


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (not its functions, labels or keywords)."""
    expr = _STRINGS.sub(" ", expr)
    expr = _MATCHERS.sub(" ", _RANGES.sub(" ", _GROUPING.sub(" ", expr)))
    names = set()
    for match in _IDENTIFIER.finditer(expr):
        name, is_call = match.group(0), match.group(1)
        start = match.start()
        if is_call or name.lower() in _KEYWORDS or (start and expr[start - 1].isdigit()):
            continue  # a function or aggregation, a keyword, or a unit (5m, 1e3)
        names.add(name)
    return names


@pytest.mark.parametrize("expr, names", [
    ('histogram_quantile(0.99, sum by (le, route) (rate(a6pay_x_bucket{service="g"}[5m])))',
     {"a6pay_x_bucket"}),
    ("sum(rate(a{result=~\"a|b\"}[5m])) / sum(rate(b[5m])) > 0.1", {"a", "b"}),
    ("max(c) > 0 and on (job) up == 0", {"c", "up"}),
    ("increase(d[15m]) > 1e3 unless e offset 5m", {"d", "e"}),
])
def test_the_extractor_finds_exactly_the_metric_names(expr, names):
    assert metric_names(expr) == names


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in DASHBOARD["panels"] for target in panel["targets"]]


def rule_exprs() -> dict[str, str]:
    return {rule["alert"]: rule["expr"] for group in RULES["groups"] for rule in group["rules"]}


def test_dashboard_and_rules_name_only_exported_metrics():
    exported = exported_names() | PROMETHEUS_OWN
    used = {name: where for where, exprs in (("dashboard", dashboard_exprs()),
                                             ("rules", rule_exprs().values()))
            for expr in exprs for name in metric_names(expr)}
    assert len(used) > 10
    unknown = {name: where for name, where in used.items() if name not in exported}
    assert not unknown, f"not exported by shared/metrics.py: {unknown}"


def test_the_dashboard_shows_what_an_operator_asks_first():
    titles = " | ".join(panel["title"].lower() for panel in DASHBOARD["panels"])
    for topic in ("payments and failures per minute", "webhook", "p99", "outbox lag",
                  "dead letters", "razorpay latency", "razorpay calls"):
        assert topic in titles, topic
    names = set().union(*(metric_names(e) for e in dashboard_exprs()))
    assert {"a6pay_events_published_total", "a6pay_webhook_deliveries_total",
            "a6pay_http_request_duration_seconds_bucket", "a6pay_outbox_oldest_unsent_seconds",
            "a6pay_dead_letters", "a6pay_razorpay_request_duration_seconds_bucket",
            "a6pay_razorpay_requests_total"} <= names
    assert len({panel["id"] for panel in DASHBOARD["panels"]}) == len(DASHBOARD["panels"])


def test_the_alerts_cover_money_waiting():
    rules = rule_exprs()
    assert re.search(r"max\(a6pay_outbox_oldest_unsent_seconds\) > 60\b", rules["OutboxLagging"])
    assert "a6pay_dead_letters" in rules["DeadLetters"] and "> 0" in rules["DeadLetters"]
    assert "a6pay_payments_stuck" in rules["PaymentsStuck"]
    assert "a6pay_razorpay_requests_total" in rules["RazorpayErrors"]
    assert 'a6pay_refunds_total{outcome="failed"}' in rules["RefundsFailed"]
    assert 'a6pay_mails_total{outcome="failed"}' in rules["MailsFailed"]
    for group in RULES["groups"]:
        for rule in group["rules"]:
            assert rule["annotations"]["summary"] and rule["labels"]["severity"], rule["alert"]


def listen_ports() -> dict[str, int]:
    """Our services and the port each listens on in compose (from its own *_PORT)."""
    env = COMPOSE["services"]["gateway"]["environment"]
    return {name: int(env[f"{name.upper()}_PORT"]) for name in
            ("gateway", "order_service", "verification_service", "webhook_service", "notifier")}


def test_prometheus_scrapes_every_service_on_its_port():
    (job,) = PROMETHEUS["scrape_configs"]
    targets = {t for config in job["static_configs"] for t in config["targets"]}
    assert targets == {f"{name}:{port}" for name, port in listen_ports().items()}
    assert job["metrics_path"] == "/metrics"


def mounts(service: str) -> dict[str, str]:
    """{container path: repository path} for a compose service's bind mounts."""
    found = {}
    for volume in COMPOSE["services"][service].get("volumes", []):
        source, target = volume.split(":")[:2]
        if source.startswith("./"):
            assert (ROOT / source).exists(), f"{service}: {source} does not exist"
            found[target] = source
    return found


def test_compose_mounts_the_files_these_tests_read():
    prometheus = mounts("prometheus")
    assert prometheus["/etc/prometheus/prometheus.yml"] == "./ops/observability/prometheus.yml"
    assert PROMETHEUS["rule_files"] == ["/etc/prometheus/alerts.yml"]
    assert prometheus["/etc/prometheus/alerts.yml"] == "./ops/observability/alerts.yml"
    grafana = mounts("grafana")
    provider = yaml.safe_load((OBSERVABILITY / "grafana" / "provisioning" / "dashboards"
                               / "a6pay.yml").read_text())["providers"][0]
    assert grafana[provider["options"]["path"]] == "./ops/observability/grafana/dashboards"
    assert grafana["/etc/grafana/provisioning"] == "./ops/observability/grafana/provisioning"
    datasource = yaml.safe_load((OBSERVABILITY / "grafana" / "provisioning" / "datasources"
                                 / "prometheus.yml").read_text())["datasources"][0]
    assert datasource["url"] == "http://prometheus:9090"
    uids = {target["datasource"]["uid"] for panel in DASHBOARD["panels"]
            for target in panel["targets"]}
    assert uids == {datasource["uid"]}
