"""docker-compose.yml and the Dockerfile, checked against the code (no Docker engine here).

Renaming a service module, a setting, a port or the console script must fail a test here.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

from gateway.routes import ROUTES
from ops.cli import _parser
from shared.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES: dict[str, dict] = COMPOSE["services"]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
DOCKERFILE = "\n".join(  # instructions only, comments dropped
    line for line in (ROOT / "Dockerfile").read_text().splitlines()
    if not line.lstrip().startswith("#")
)
INFRA = {"postgres": "postgres:15", "rabbitmq": "rabbitmq:4-management",
         "mailpit": "axllent/mailpit:v1.21", "prometheus": "prom/prometheus:v2.53.0",
         "grafana": "grafana/grafana:11.1.0"}
MAILPIT_SMTP_PORT = 1025  # the image's defaults
MAILPIT_UI_PORT = 8025
APP = sorted(name for name, svc in SERVICES.items() if "build" in svc)
SETTINGS_ENV = {name.upper() for name in Settings.model_fields}
_INTERPOLATION = re.compile(r"\$\{(\w+)(?::?([-?])([^}]*))?\}")
# What a user puts in .env (compose refuses to start without the required ones).
USER_ENV = {"POSTGRES_PASSWORD": "pg-pass-from-env", "RABBITMQ_PASSWORD": "mq-pass-from-env",
            "GRAFANA_ADMIN_PASSWORD": "grafana-pass-from-env"}
ENV_EXAMPLE = ROOT / ".env.example"
_PORT_FIELD = re.compile(r"\b(?:s|settings)\.([a-z_]+_port)\b")
_HEALTH_URL = re.compile(r"http://(?:127\.0\.0\.1|localhost):(\d+)/(healthz|readyz)")


def resolved(value) -> str:
    """A compose value with `${VAR:-default}` replaced by its default and a required
    `${VAR:?message}` by what the user set in USER_ENV (no .env here)."""

    def one(match: re.Match) -> str:
        name, kind, rest = match.groups()
        if kind == "?":
            assert name in USER_ENV, f"{name} is required but the test sets no value for it"
            return USER_ENV[name]
        return rest or ""

    return _INTERPOLATION.sub(one, str(value))


def env(service: str) -> dict[str, str]:
    return {k: resolved(v) for k, v in (SERVICES[service].get("environment") or {}).items()}


def command(service: str) -> list[str]:
    return SERVICES[service].get("command") or []


def module_of(service: str) -> str | None:
    cmd = command(service)
    return cmd[2] if cmd[:2] == ["python", "-m"] and len(cmd) == 3 else None


SERVERS = [name for name in APP if module_of(name)]  # long-running `python -m` services
ONE_SHOTS = [name for name in APP if command(name)[:1] == ["a6pay"]]


def port_setting(module: str) -> str:
    """The Settings field the module's `__main__.py` listens on, e.g. `gateway_port`."""
    fields = set(_PORT_FIELD.findall((ROOT / module / "__main__.py").read_text()))
    assert len(fields) == 1, f"{module}/__main__.py: cannot tell its port setting: {fields}"
    return fields.pop()


def listen_port(service: str) -> int:
    field = port_setting(module_of(service)).upper()
    assert field in env(service), f"{service}: {field} not set"
    return int(env(service)[field])


def health_port(service: str) -> int:
    test = " ".join(SERVICES[service]["healthcheck"]["test"])
    match = _HEALTH_URL.search(test)
    assert match, f"{service}: healthcheck does not probe /readyz or /healthz: {test}"
    # Ours are healthy when their dependencies answer; the sandbox stands in for Razorpay
    # and has no dependencies (nor a /readyz).
    expected = "healthz" if service == "razorpay_sandbox" else "readyz"
    assert match.group(2) == expected, f"{service}: the healthcheck should probe /{expected}"
    return int(match.group(1))


def test_every_service_is_app_or_infrastructure():
    assert set(SERVICES) == set(APP) | set(INFRA)
    for name, image in INFRA.items():
        assert SERVICES[name]["image"] == image
    for name in APP:
        assert module_of(name) or name in ONE_SHOTS, f"{name}: unexpected command {command(name)}"


@pytest.mark.parametrize("service", SERVERS)
def test_python_m_module_exists(service):
    module = module_of(service)
    assert (ROOT / module / "__main__.py").is_file(), f"{service}: no {module}/__main__.py"
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    assert f"{module}*" in packages or module in packages, f"{module} is not packaged"
    assert re.search(rf"^COPY {module} ", DOCKERFILE, re.M), f"Dockerfile does not copy {module}"


def test_the_runner_and_compose_start_the_same_services():
    from ops.runner import services

    assert {module_of(name) for name in SERVERS} == set(services(use_sandbox=True))


def test_one_shots_use_the_console_script():
    scripts = PYPROJECT["project"]["scripts"]
    assert scripts.get("a6pay") == "ops.cli:main"
    subcommands = set(_parser()._subparsers._group_actions[0].choices)
    assert command("migrate") == ["a6pay", "migrate"]
    for name in ONE_SHOTS:
        assert command(name)[1] in subcommands, f"{name}: unknown a6pay command"
        assert SERVICES[name].get("restart") == "no", f"{name} is one-shot: restart must be no"
    assert "demo" in ONE_SHOTS and command("demo")[:2] == ["a6pay", "demo-booking"]


@pytest.mark.parametrize("service", APP)
def test_app_environment_names_are_settings(service):
    unknown = set(env(service)) - SETTINGS_ENV
    assert not unknown, f"{service}: not fields of shared.settings.Settings: {sorted(unknown)}"


def test_app_services_share_one_environment():
    first = SERVICES[APP[0]]["environment"]
    assert all(SERVICES[name]["environment"] == first for name in APP)
    assert "&app-env" in (ROOT / "docker-compose.yml").read_text()


@pytest.mark.parametrize("service", SERVERS)
def test_listen_port_is_the_probed_port(service):
    assert env(service)["BIND_HOST"] == "0.0.0.0"
    assert health_port(service) == listen_port(service)


def test_urls_point_at_services_on_their_ports():
    urls = {(svc, key): value for svc in APP for key, value in env(svc).items()
            if value.startswith("http://")}
    assert urls
    for (svc, key), value in urls.items():
        host, port = urlsplit(value).hostname, urlsplit(value).port
        if host in ("localhost", "127.0.0.1"):  # where a browser goes: the published gateway
            assert key.startswith("CHECKOUT_") or key == "SANDBOX_CALLBACK_URL", (
                f"{svc} {key}: loopback is not another service")
            assert port == published_gateway_port(), f"{key}: not the published gateway port"
            continue
        assert host in SERVERS, f"{svc} {key}={value}: no such compose service"
        assert port == listen_port(host), f"{svc} {key}={value}: {host} listens elsewhere"


def test_gateway_upstreams_serve_the_gateway_routes():
    gateway_env = env("gateway")
    for route in ROUTES:
        url = gateway_env[route.upstream_setting.upper()]
        target = urlsplit(url).hostname
        routes_py = (ROOT / module_of(target) / "routes.py").read_text()
        assert route.path in routes_py, f"{route.path} is not served by {target}"


def test_infrastructure_urls_match_the_images():
    db = urlsplit(env("gateway")["DATABASE_URL"])
    pg = SERVICES["postgres"]["environment"]
    assert (db.hostname, db.port) == ("postgres", 5432)
    assert (db.username, db.password) == (
        resolved(pg["POSTGRES_USER"]), resolved(pg["POSTGRES_PASSWORD"]))
    assert db.password == USER_ENV["POSTGRES_PASSWORD"]
    assert db.path == "/" + pg["POSTGRES_DB"] == "/a6pay"
    amqp = urlsplit(env("gateway")["AMQP_URL"])
    mq = SERVICES["rabbitmq"]["environment"]
    assert (amqp.hostname, amqp.port, amqp.username, amqp.password) == (
        "rabbitmq", 5672, resolved(mq["RABBITMQ_DEFAULT_USER"]),
        resolved(mq["RABBITMQ_DEFAULT_PASS"]))
    assert amqp.password == USER_ENV["RABBITMQ_PASSWORD"]
    sandbox_port = listen_port("razorpay_sandbox")
    assert env("gateway")["RAZORPAY_BASE_URL"] == f"http://razorpay_sandbox:{sandbox_port}"
    assert "${RAZORPAY_BASE_URL:-" in str(SERVICES["gateway"]["environment"]["RAZORPAY_BASE_URL"])
    assert env("razorpay_sandbox")["SANDBOX_WEBHOOK_URL"].endswith("/api/razorpay/webhook")
    assert any(r.path == "/api/razorpay/webhook" for r in ROUTES)


def test_razorpay_keys_pass_through_with_sandbox_defaults():
    from shared import settings

    raw = SERVICES["gateway"]["environment"]
    defaults = {"RAZORPAY_KEY_ID": settings.SANDBOX_KEY_ID,
                "RAZORPAY_KEY_SECRET": settings.SANDBOX_KEY_SECRET,
                "RAZORPAY_WEBHOOK_SECRET": settings.SANDBOX_WEBHOOK_SECRET}
    for key, default in defaults.items():
        assert raw[key] == f"${{{key}:-{default}}}", f"{key}: not passed through"


def test_infrastructure_healthchecks():
    assert "pg_isready" in " ".join(SERVICES["postgres"]["healthcheck"]["test"])
    ping = ["rabbitmq-diagnostics", "-q", "ping"]
    assert SERVICES["rabbitmq"]["healthcheck"]["test"][-3:] == ping
    assert "127.0.0.1:15672:15672" in SERVICES["rabbitmq"]["ports"]


def test_depends_on_targets_exist_with_conditions():
    for name, svc in SERVICES.items():
        for target, spec in (svc.get("depends_on") or {}).items():
            assert target in SERVICES, f"{name} depends on unknown {target}"
            condition = spec["condition"]
            if target in ONE_SHOTS:
                assert condition == "service_completed_successfully", f"{name} -> {target}"
            else:
                assert condition == "service_healthy", f"{name} -> {target}"
                assert "healthcheck" in SERVICES[target], f"{target} has no healthcheck"
    assert SERVICES["migrate"]["depends_on"] == {"postgres": {"condition": "service_healthy"}}


# The sandbox keeps its state in memory; the gateway has no database and waits for the
# services, which wait for these.
@pytest.mark.parametrize("service", [s for s in SERVERS if s not in ("razorpay_sandbox",
                                                                     "gateway")])
def test_services_wait_for_the_schema_and_the_broker(service):
    deps = SERVICES[service]["depends_on"]
    assert deps["migrate"]["condition"] == "service_completed_successfully"
    assert {"postgres", "rabbitmq"} <= set(deps)


def test_gateway_waits_for_its_upstreams():
    upstreams = {urlsplit(env("gateway")[r.upstream_setting.upper()]).hostname for r in ROUTES}
    assert upstreams <= set(SERVICES["gateway"]["depends_on"])


def published_gateway_port() -> int:
    (mapping,) = SERVICES["gateway"]["ports"]
    host, _, container = str(mapping).rpartition(":")
    assert int(container) == listen_port("gateway")
    return int(host)


def test_only_the_gateway_is_published():
    published = [name for name in APP if SERVICES[name].get("ports")]
    assert published == ["gateway"]
    assert published_gateway_port() == 8080


def test_dockerfile_installs_the_locked_dependencies_without_dev_extras():
    assert re.search(r"^FROM python:3\.11-slim\b", DOCKERFILE, re.M)
    assert re.search(r"^COPY pyproject\.toml uv\.lock ", DOCKERFILE, re.M)
    # runtime dependencies exactly as locked, hashes checked; the project without its deps
    assert re.search(r"uv export --frozen --no-dev --no-emit-project\b", DOCKERFILE)
    assert "--extra" not in DOCKERFILE and "[dev]" not in DOCKERFILE
    assert re.search(r"pip install --require-hashes -r ", DOCKERFILE)
    assert re.search(r"^RUN pip install --no-deps \.(\s|$)", DOCKERFILE, re.M)
    makefile = (ROOT / "Makefile").read_text()
    (docker_uv,) = re.findall(r"^ARG UV_VERSION=(\S+)", DOCKERFILE, re.M)
    assert re.search(rf"^UV_VERSION := {re.escape(docker_uv)}$", makefile, re.M)
    users = re.findall(r"^USER (\S+)", DOCKERFILE, re.M)
    assert users and users[-1] not in ("root", "0"), "the image must not run as root"
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()}
    for module in [module_of(s) for s in SERVERS] + ["shared"]:
        assert module not in ignored and "pyproject.toml" not in ignored
    assert "uv.lock" not in ignored


def test_mail_goes_to_mailpit_whose_page_only_this_machine_sees():
    app_env = env("notifier")
    assert (app_env["SMTP_HOST"], int(app_env["SMTP_PORT"])) == ("mailpit", MAILPIT_SMTP_PORT)
    assert app_env["SMTP_STARTTLS"] == "auto"  # upgraded whenever the server offers it
    raw = SERVICES["notifier"]["environment"]
    for key in ("SMTP_HOST", "SMTP_PORT", "SMTP_USERNAME", "SMTP_PASSWORD", "SMTP_FROM",
                "SMTP_STARTTLS"):
        assert str(raw[key]).startswith(f"${{{key}:-"), f"{key}: not passed through"
    assert SERVICES["notifier"]["depends_on"]["mailpit"] == {"condition": "service_healthy"}
    assert SERVICES["mailpit"]["ports"] == [f"127.0.0.1:{MAILPIT_UI_PORT}:{MAILPIT_UI_PORT}"]
    assert "readyz" in " ".join(SERVICES["mailpit"]["healthcheck"]["test"])


def test_the_sandbox_checkout_returns_to_our_callback_through_the_gateway():
    url = urlsplit(env("razorpay_sandbox")["SANDBOX_CALLBACK_URL"])
    assert url.port == published_gateway_port()
    assert any(r.path == url.path for r in ROUTES), f"{url.path} is not a gateway route"


def test_dockerfile_copies_every_packaged_package():
    """`a6pay migrate` (compose's migrate step) runs ops.cli: the image needs ops/ too."""
    packages = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    for package in (p.rstrip("*") for p in packages):
        assert re.search(rf"^COPY {package} ", DOCKERFILE, re.M), f"Dockerfile lacks {package}"


def test_make_installs_from_the_lock_and_test_checks_it():
    makefile = (ROOT / "Makefile").read_text()
    assert (ROOT / "uv.lock").is_file()
    assert re.search(r"^\t\$\(UV\) sync --frozen\b", makefile, re.M)
    assert re.search(r"^\t\$\(UV\) lock$", makefile, re.M)  # make lock
    assert re.search(r"\$\(UV\) lock --check", makefile)
    assert re.search(r"^test: lock-check ", makefile, re.M)
    assert re.search(r"^run: \$\(STAMP\)", makefile, re.M)
    assert "pip install --quiet -e" not in makefile


def test_no_published_default_credentials():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "guest" not in text.lower()
    for service, key in [("postgres", "POSTGRES_PASSWORD"), ("rabbitmq", "RABBITMQ_DEFAULT_PASS")]:
        raw = str(SERVICES[service]["environment"][key])
        assert re.fullmatch(r"\$\{\w+:\?[^}]+\}", raw), f"{service} {key}: not required: {raw}"
    for name in ("DATABASE_URL", "AMQP_URL"):
        raw = str(SERVICES["gateway"]["environment"][name])
        assert ":?" in raw, f"{name}: no required password"


def test_the_env_example_names_every_required_variable():
    required = set(re.findall(r"\$\{(\w+):\?", (ROOT / "docker-compose.yml").read_text()))
    assert required == set(USER_ENV)
    example = dict(line.split("=", 1) for line in ENV_EXAMPLE.read_text().splitlines()
                   if line and not line.startswith("#"))
    assert required <= set(example)
    assert ".env" in (ROOT / ".gitignore").read_text().split()
    assert ".env" in (ROOT / ".dockerignore").read_text().split()


def test_only_the_gateway_listens_beyond_the_host():
    for name, svc in SERVICES.items():
        for mapping in svc.get("ports") or []:
            if name == "gateway":
                continue
            assert str(mapping).startswith("127.0.0.1:"), f"{name} publishes {mapping} widely"


def test_no_grafana_default_login_and_a_supported_rabbitmq():
    raw = str(SERVICES["grafana"]["environment"]["GF_SECURITY_ADMIN_PASSWORD"])
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", raw), raw
    # RabbitMQ 3.x is out of community support: no security fixes
    major = SERVICES["rabbitmq"]["image"].split(":", 1)[1].split(".")[0].split("-")[0]
    assert int(major) >= 4
