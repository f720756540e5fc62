"""deploy/k8s, read statically: every manifest parses, the objects refer to one another by
the names and labels they really have, and the pods run commands the CLI has."""

from __future__ import annotations

from typing import Any

import yaml

from tests.deploy.manifests import (
    DEPLOY,
    ROOT,
    VERSION,
    dockerfile_instructions,
    last,
    parse_idnode_command,
    stages,
    unknown_variables,
    yaml_documents,
)

K8S = DEPLOY / "k8s"
KINDS = {
    "ConfigMap",
    "Deployment",
    "Service",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Job",
    "Cluster",  # CloudNativePG
    "Pooler",
}


def objects() -> list[dict[str, Any]]:
    return [doc for path in sorted(K8S.glob("*.yaml")) for doc in yaml_documents(path)]


def of_kind(kind: str) -> list[dict[str, Any]]:
    return [o for o in objects() if o["kind"] == kind]


def workloads() -> list[dict[str, Any]]:
    return of_kind("Deployment") + of_kind("Job")


def container(workload: dict[str, Any]) -> dict[str, Any]:
    (only,) = workload["spec"]["template"]["spec"]["containers"]
    return dict(only)


def running(command: str) -> dict[str, Any]:
    (found,) = [w for w in workloads() if container(w)["args"][0] == command]
    return found


def pod_labels(workload: dict[str, Any]) -> dict[str, str]:
    return dict(workload["spec"]["template"]["metadata"]["labels"])


def selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return selector.items() <= labels.items()


def test_every_manifest_parses_and_has_the_kinds_of_a_deployment() -> None:
    found = objects()
    assert {o["kind"] for o in found} == KINDS
    for o in found:
        assert o["apiVersion"]
        assert o["metadata"]["name"]
    # No Secret with values in git: it is created with kubectl (README "Deploying").
    assert not of_kind("Secret")


def test_pods_run_commands_the_cli_has() -> None:
    assert parse_idnode_command(container(running("migrate"))["args"]).command.name == "migrate"
    assert parse_idnode_command(container(running("gateway"))["args"]).command.name == "gateway"
    serve = parse_idnode_command(container(running("serve"))["args"])
    assert serve.params["no_migrate"]  # the Job migrates, once per release
    assert serve.params["host"] == "0.0.0.0"
    assert running("migrate")["kind"] == "Job"
    assert running("serve")["kind"] == running("gateway")["kind"] == "Deployment"


def test_node_probes_ask_the_health_endpoints_on_the_served_port() -> None:
    node = container(running("serve"))
    port = parse_idnode_command(node["args"]).params["port"]
    (declared,) = node["ports"]
    assert declared["containerPort"] == port
    probes = {"livenessProbe": "/healthz", "readinessProbe": "/readyz"}
    for probe, path in probes.items():
        check = node[probe]["httpGet"]
        assert check["path"] == path, probe
        assert check["port"] in (port, declared.get("name")), probe


def test_service_hpa_and_pdb_target_the_node_deployment() -> None:
    nodes = running("serve")
    (service,) = of_kind("Service")
    assert selects(service["spec"]["selector"], pod_labels(nodes))
    # The gateway serves no HTTP: the Service must not send it requests.
    assert not selects(service["spec"]["selector"], pod_labels(running("gateway")))
    node = container(nodes)
    targets = {p["targetPort"] for p in service["spec"]["ports"]}
    assert targets <= {node["ports"][0]["containerPort"], node["ports"][0]["name"]}

    (hpa,) = of_kind("HorizontalPodAutoscaler")
    target = hpa["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", nodes["metadata"]["name"])
    # Utilization is relative to the request, so the container must make one.
    assert node["resources"]["requests"]["cpu"]

    budgets = {
        b["metadata"]["name"]: b["spec"]["selector"]["matchLabels"]
        for b in of_kind("PodDisruptionBudget")
    }
    assert budgets[nodes["metadata"]["name"]] == nodes["spec"]["selector"]["matchLabels"]


def test_deployments_select_their_own_pods() -> None:
    for deployment in of_kind("Deployment"):
        assert selects(deployment["spec"]["selector"]["matchLabels"], pod_labels(deployment))


def env_sources(workload: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["name"]: e for e in container(workload).get("env", [])}


def secret_ref(workload: dict[str, Any], name: str) -> tuple[str, str]:
    reference = env_sources(workload)[name]["valueFrom"]["secretKeyRef"]
    return reference["name"], reference["key"]


def test_secrets_come_from_a_secret_created_as_the_readme_says() -> None:
    wanted = {
        "serve": (
            "IDNODE_DATABASE_URL",
            "IDNODE_DATABASE_LISTEN_URL",
            "IDNODE_DATABASE_REPLICA_URLS",
            "IDNODE_ADMIN_TOKEN",
        ),
        "gateway": ("IDNODE_DATABASE_URL", "IDNODE_MQTT_URL"),
        "migrate": ("IDNODE_DATABASE_URL",),
    }
    references = {
        secret_ref(running(command), variable)
        for command, variables in wanted.items()
        for variable in variables
    }
    readme = (ROOT / "README.md").read_text()
    (secret,) = {name for name, _ in references}
    assert f"create secret generic {secret}" in readme
    for _, key in references:
        assert f"--from-literal={key}=" in readme, key


def test_settings_are_ones_the_node_reads() -> None:
    (config,) = of_kind("ConfigMap")
    assert not unknown_variables(config["data"])
    for workload in workloads():
        assert not unknown_variables(env_sources(workload))
        refs = [s["configMapRef"]["name"] for s in container(workload).get("envFrom", [])]
        assert refs == [config["metadata"]["name"]]
    # The gateway replicas split the devices' messages only as one shared group.
    assert config["data"]["IDNODE_MQTT_SHARED_GROUP"]
    assert running("gateway")["spec"]["replicas"] >= 2


def test_one_image_everywhere_and_the_same_as_compose_builds() -> None:
    images = {container(w)["image"] for w in workloads()}
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]
    assert images == {compose["node-1"]["image"]}
    assert images.pop().endswith(f"/idnode:{VERSION}")


def test_pods_run_as_the_images_non_root_user() -> None:
    user = last(stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1], "USER")
    assert user is not None
    for workload in workloads():
        context = workload["spec"]["template"]["spec"]["securityContext"]
        assert context["runAsNonRoot"] is True
        assert str(context["runAsUser"]) == user.split(":")[0]
        assert container(workload)["securityContext"]["allowPrivilegeEscalation"] is False


def test_node_pods_sign_with_the_key_mounted_from_its_secret() -> None:
    """IDNODE_NODE_KEY_FILE (ConfigMap) lies in a read-only mount of the Secret every node
    pod shares, readable by the pod's group: a read-only root filesystem leaves the node no
    other place to keep a key, and pods with keys of their own would sign differently."""
    (config,) = of_kind("ConfigMap")
    key_file = config["data"]["IDNODE_NODE_KEY_FILE"]
    node = running("serve")
    pod = node["spec"]["template"]["spec"]
    (mount,) = [
        m for m in container(node)["volumeMounts"] if key_file.startswith(m["mountPath"] + "/")
    ]
    assert mount["readOnly"] is True
    (volume,) = [v for v in pod["volumes"] if v["name"] == mount["name"]]
    assert volume["secret"]["secretName"] == "idnode-node-key"
    assert key_file.rsplit("/", 1)[1] == "key.pem"  # the key the README's secret holds
    assert volume["secret"]["defaultMode"] & 0o007 == 0
    assert pod["securityContext"]["fsGroup"] == pod["securityContext"]["runAsGroup"]


def test_the_nodes_reach_cloudnativepg_through_its_transaction_pooler() -> None:
    """The database manifest is a CloudNativePG Cluster with a synchronous standby (no
    acknowledged write lost on failover) and a PgBouncer Pooler in transaction mode, and the
    ConfigMap tells the node so; the README's secret points at the pooler and the primary."""
    (cluster,) = of_kind("Cluster")
    (pooler,) = of_kind("Pooler")
    assert cluster["apiVersion"] == pooler["apiVersion"] == "postgresql.cnpg.io/v1"
    assert cluster["spec"]["instances"] >= 3
    assert cluster["spec"]["minSyncReplicas"] >= 1
    assert pooler["spec"]["cluster"]["name"] == cluster["metadata"]["name"]
    assert pooler["spec"]["type"] == "rw"
    assert pooler["spec"]["pgbouncer"]["poolMode"] == "transaction"
    (config,) = of_kind("ConfigMap")
    assert config["data"]["IDNODE_DATABASE_TRANSACTION_POOLER"] == "true"
    readme = (ROOT / "README.md").read_text()
    name = cluster["metadata"]["name"]
    assert f"@{pooler['metadata']['name']}" in readme  # database-url
    assert f"@{name}-rw" in readme  # database-listen-url
    assert f"@{name}-ro" in readme  # database-replica-urls
