"""deploy/data-tier/: the CloudNativePG Cluster and the RabbitmqCluster, and the services'
URLs pointing at them, checked offline for the fields the services' zero loss relies on
(these kinds are the operators' own: Kubernetes' schemas do not know them)."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import yaml

from shared.messaging import quorum_queue_arguments
from shared.settings import load_settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
TIER = DEPLOY / "data-tier"


def docs(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def one(kind: str) -> dict:
    [found] = [d for p in sorted(TIER.glob("*.yaml")) for d in docs(p) if d.get("kind") == kind]
    return found


def secret() -> dict[str, str]:
    [doc] = docs(DEPLOY / "secret.example.yaml")
    return doc["stringData"]


def test_the_kustomization_applies_both_clusters():
    [kustomization] = docs(TIER / "kustomization.yaml")
    assert sorted(kustomization["resources"]) == ["postgres-cluster.yaml",
                                                  "rabbitmq-cluster.yaml"]


def test_postgresql_has_three_instances_and_a_synchronous_standby_it_waits_for():
    cluster = one("Cluster")
    assert cluster["apiVersion"] == "postgresql.cnpg.io/v1"
    spec = cluster["spec"]
    assert spec["instances"] == 3
    synchronous = spec["postgresql"]["synchronous"]
    assert synchronous["number"] >= 1 and synchronous["dataDurability"] == "required"
    assert spec["postgresql"]["parameters"]["synchronous_commit"] == "on"
    assert spec["affinity"]["podAntiAffinityType"] == "required"


def test_the_services_reach_whichever_instance_is_the_primary():
    cluster, pooler = one("Cluster"), one("Pooler")
    name = cluster["metadata"]["name"]
    assert (pooler["spec"]["cluster"]["name"], pooler["spec"]["type"]) == (name, "rw")
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    assert urlsplit(secret()["DATABASE_URL"]).hostname == pooler["metadata"]["name"]
    # migrations hold a session advisory lock: past the pooler, on the -rw Service
    assert urlsplit(secret()["DATABASE_DIRECT_URL"]).hostname == f"{name}-rw"


def test_rabbitmq_has_three_nodes_and_amqp_url_names_each():
    cluster = one("RabbitmqCluster")
    assert cluster["apiVersion"] == "rabbitmq.com/v1beta1"
    assert cluster["spec"]["replicas"] == 3
    name = cluster["metadata"]["name"]
    urls = secret()["AMQP_URL"].split(",")
    assert [urlsplit(url).hostname for url in urls] == [
        f"{name}-server-{i}.{name}-nodes" for i in range(3)]
    # and so each queue gets a replica on every node
    settings = load_settings(amqp_url=secret()["AMQP_URL"])
    assert quorum_queue_arguments(settings)["x-quorum-initial-group-size"] == 3
