"""deploy/: the Kubernetes manifests, validated offline against Kubernetes' own schemas
(`kubernetes-validate` ships them), and checked for what running A6 Pay there needs."""

from __future__ import annotations

from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from shared.settings import Settings
from testkit.stack import SERVICES, SINGLETONS

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
KUBERNETES_VERSION = "1.33"
AUTOSCALED = {"gateway", "webhook-service", "notifier"}
# production talks to Razorpay and to an SMTP relay: no sandbox, no mail catcher
SERVICE_NAMES = {module.replace("_", "-"): module for module in SERVICES
                 if module not in SINGLETONS}


def manifests() -> list[tuple[str, dict]]:
    return [(path.name, doc) for path in sorted(DEPLOY.glob("*.yaml"))
            if path.name != "kustomization.yaml"
            for doc in yaml.safe_load_all(path.read_text()) if doc]


def of_kind(kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for _, doc in manifests() if doc["kind"] == kind}


def container(deployment: dict) -> dict:
    [only] = deployment["spec"]["template"]["spec"]["containers"]
    return only


@pytest.mark.parametrize(("name", "doc"), manifests(),
                         ids=[f"{n}:{d['kind']}/{d['metadata']['name']}" for n, d in manifests()])
def test_each_manifest_is_valid_kubernetes(name, doc):
    # strict: an unknown or misspelt field is an error, not silently dropped by the server
    kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_every_service_has_a_deployment_and_a_service_on_its_port():
    config = of_kind("ConfigMap")["a6pay-config"]["data"]
    deployments, services = of_kind("Deployment"), of_kind("Service")
    assert set(deployments) == set(services) == set(SERVICE_NAMES)
    for name, module in SERVICE_NAMES.items():
        port = int(config[SERVICES[module]])
        spec = container(deployments[name])
        assert spec["command"] == ["python", "-m", module]
        assert spec["ports"] == [{"name": "http", "containerPort": port}]
        assert services[name]["spec"]["ports"][0]["port"] == port
        labels = deployments[name]["spec"]["template"]["metadata"]["labels"]
        assert services[name]["spec"]["selector"].items() <= labels.items()
    for setting in ("ORDER_SERVICE_URL", "VERIFICATION_SERVICE_URL", "WEBHOOK_SERVICE_URL"):
        name = setting.removesuffix("_URL").lower().replace("_", "-")
        assert config[setting] == f"http://{name}:{config[setting.replace('URL', 'PORT')]}"


def test_probes_resources_and_secrets_on_every_pod():
    pods = [container(d) for d in of_kind("Deployment").values()]
    pods.append(of_kind("Job")["a6pay-migrate"]["spec"]["template"]["spec"]["containers"][0])
    for spec in pods:
        assert {"cpu", "memory"} <= spec["resources"]["requests"].keys(), spec["name"]
        assert spec["envFrom"] == [{"configMapRef": {"name": "a6pay-config"}}]  # no whole Secret
    for spec in pods[:-1]:
        assert spec["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
        assert spec["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}


def test_every_secret_setting_comes_from_the_secret_not_the_config_map():
    secret = of_kind("Secret")["a6pay-secrets"]["stringData"]
    config = of_kind("ConfigMap")["a6pay-config"]["data"]
    secret_settings = {"DATABASE_URL", "AMQP_URL", "REDIS_URL", "RAZORPAY_KEY_ID",
                       "RAZORPAY_KEY_SECRET", "RAZORPAY_WEBHOOK_SECRET", "PASS_SIGNING_SECRET",
                       "AUTH_JWT_SECRET"}
    assert secret_settings <= secret.keys()
    assert not secret_settings & config.keys()
    known = {name.upper() for name in Settings.model_fields}
    assert (config.keys() | secret.keys()) - {"DATABASE_DIRECT_URL"} <= known


def test_autoscalers_for_the_gateway_webhooks_and_notifier():
    hpas, deployments = of_kind("HorizontalPodAutoscaler"), of_kind("Deployment")
    assert set(hpas) == AUTOSCALED
    for name, hpa in hpas.items():
        assert hpa["spec"]["scaleTargetRef"] == {
            "apiVersion": "apps/v1", "kind": "Deployment", "name": name}
        assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
        assert "replicas" not in deployments[name]["spec"]  # the autoscaler owns the count


def test_migrations_run_as_a_job_straight_to_postgresql():
    job = of_kind("Job")["a6pay-migrate"]["spec"]["template"]["spec"]
    [spec] = job["containers"]
    assert spec["command"] == ["a6pay", "migrate"] and job["restartPolicy"] == "OnFailure"
    # a session advisory lock cannot live behind PgBouncer's transaction pooling
    [database] = [e for e in spec["env"] if e["name"] == "DATABASE_URL"]
    assert database["valueFrom"]["secretKeyRef"]["key"] == "DATABASE_DIRECT_URL"


def test_the_kustomization_applies_everything_but_the_secret_and_the_job():
    listed = yaml.safe_load((DEPLOY / "kustomization.yaml").read_text())["resources"]
    files = {p.name for p in DEPLOY.glob("*.yaml")}
    assert set(listed) == files - {"kustomization.yaml", "secret.example.yaml",
                                   "migrate-job.yaml"}


# --- least privilege: each pod's secrets, who may talk to whom ---------------------------

DATA_CLIENTS = {"order-service", "verification-service", "webhook-service", "notifier"}
# What each Deployment may read from the Secret (the gateway: no Razorpay key secret, no
# database, no broker)
SECRETS_OF = {
    "gateway": {"RAZORPAY_KEY_ID", "AUTH_JWT_SECRET", "REDIS_URL"},
    "order-service": {"DATABASE_URL", "AMQP_URL", "RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET",
                      "ADMIN_API_TOKEN", "STAFF_API_TOKEN", "PASS_SIGNING_SECRET"},
    "verification-service": {"DATABASE_URL", "AMQP_URL", "RAZORPAY_KEY_ID",
                             "RAZORPAY_KEY_SECRET", "PASS_SIGNING_SECRET"},
    "webhook-service": {"DATABASE_URL", "AMQP_URL", "RAZORPAY_KEY_ID", "RAZORPAY_KEY_SECRET",
                        "RAZORPAY_WEBHOOK_SECRET"},
    "notifier": {"DATABASE_URL", "AMQP_URL", "RAZORPAY_KEY_ID", "PASS_SIGNING_SECRET",
                 "SMTP_PASSWORD"},
}


def secret_keys(spec: dict) -> set[str]:
    keys = set()
    for entry in spec.get("env", []):
        ref = entry.get("valueFrom", {}).get("secretKeyRef")
        if ref is not None:
            assert ref["name"] == "a6pay-secrets" and ref["key"] == entry["name"], entry
            keys.add(ref["key"])
    return keys


def test_each_deployment_gets_only_the_secrets_it_uses():
    from shared.live_guard import SECRETS_USED

    deployments = of_kind("Deployment")
    secret = of_kind("Secret")["a6pay-secrets"]["stringData"]
    for name, deployment in deployments.items():
        keys = secret_keys(container(deployment))
        assert keys == SECRETS_OF[name], name
        assert keys <= secret.keys()
        # what live mode checks in this service, it is given
        own = SECRETS_USED[SERVICE_NAMES[name]] - {"ADMIN_API_TOKEN", "STAFF_API_TOKEN",
                                                    "AUTH_JWT_SECRET"}
        assert own <= keys, name
    assert "RAZORPAY_KEY_SECRET" not in secret_keys(container(deployments["gateway"]))


def test_trusted_proxies_are_the_ingress_range_not_the_whole_private_network():
    import ipaddress

    config = of_kind("ConfigMap")["a6pay-config"]["data"]
    networks = [ipaddress.ip_network(n.strip()) for n in
                config["GATEWAY_TRUSTED_PROXIES"].split(",")]
    assert networks and all(n.prefixlen >= 20 for n in networks), networks


def selected(policy: dict) -> dict:
    return policy["spec"]["podSelector"].get("matchLabels", {})


def peers(rules: list[dict]) -> list[dict]:
    return [peer for rule in rules for peer in rule.get("from", rule.get("to", []))]


def test_a_network_policy_per_component_and_deny_by_default():
    policies = of_kind("NetworkPolicy")
    deny = policies["a6pay-default-deny"]["spec"]
    assert deny["podSelector"] == {"matchLabels": {"app.kubernetes.io/part-of": "a6pay"}}
    assert set(deny["policyTypes"]) == {"Ingress", "Egress"}
    assert "ingress" not in deny and "egress" not in deny
    by_pod = {selected(p).get("app.kubernetes.io/name"): p["spec"] for p in policies.values()}
    assert set(SERVICE_NAMES) | {"migrate"} <= set(by_pod)
    # only the ingress controller reaches the gateway
    [gateway_in] = by_pod["gateway"]["ingress"]
    assert all("namespaceSelector" in peer for peer in gateway_in["from"])
    # only the gateway reaches the services (Prometheus scrapes from its own namespace)
    for name in ("order-service", "verification-service", "webhook-service"):
        sources = peers(by_pod[name]["ingress"])
        pods = [p["podSelector"]["matchLabels"] for p in sources if "podSelector" in p
                and "namespaceSelector" not in p]
        assert pods == [{"app.kubernetes.io/name": "gateway"}], name
    assert all("namespaceSelector" in p for p in peers(by_pod["notifier"].get("ingress", [])))


def test_only_the_services_reach_postgresql_and_rabbitmq_and_only_the_gateway_redis():
    policies = of_kind("NetworkPolicy")
    by_name = {p["metadata"]["name"]: p["spec"] for p in policies.values()}

    def sources(policy: str) -> set[str]:
        found = set()
        for peer in peers(by_name[policy]["ingress"]):
            labels = peer["podSelector"]
            found |= set(labels.get("matchLabels", {}).values())
            for expression in labels.get("matchExpressions", []):
                found |= set(expression["values"])
        return found

    assert sources("a6pay-database") == DATA_CLIENTS | {"migrate"}
    assert sources("a6pay-broker") == DATA_CLIENTS
    assert sources("a6pay-redis") == {"gateway"}
    # and the gateway has no way out to them
    gateway_out = peers(by_name["a6pay-gateway"]["egress"])
    names = {v for p in gateway_out for v in p.get("podSelector", {}).get(
        "matchLabels", {}).values()}
    assert not names & {"postgres", "pgbouncer", "rabbitmq"}
