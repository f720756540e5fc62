"""deploy/compose.yaml and the HAProxy config it mounts, read statically (no Docker engine
in CI): the services exist, run commands the CLI has, and are wired to one another."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.manifests import (
    DEPLOY,
    INTERPOLATION,
    ROOT,
    VERSION,
    dockerfile_instructions,
    env_file,
    idnode_argv,
    image_argv,
    interpolate,
    parse_idnode_command,
    stages,
    unknown_variables,
    url_host,
)

COMPOSE = DEPLOY / "compose.yaml"
EXAMPLE = env_file(DEPLOY / ".env.example")
NODES = ("node-1", "node-2")


def services() -> dict[str, dict[str, Any]]:
    return dict(yaml.safe_load(COMPOSE.read_text())["services"])


def ours() -> dict[str, dict[str, Any]]:
    """The services built from deploy/Dockerfile."""
    return {name: s for name, s in services().items() if "build" in s}


def argv(service: dict[str, Any]) -> list[str]:
    entrypoint, command = image_argv(stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1])
    return idnode_argv(entrypoint + service.get("command", command))


def env(service: dict[str, Any]) -> dict[str, str]:
    return {k: interpolate(str(v), EXAMPLE) for k, v in service.get("environment", {}).items()}


def by_image(prefixes: tuple[str, ...]) -> str:
    found = [n for n, s in services().items() if str(s.get("image", "")).startswith(prefixes)]
    assert len(found) == 1, f"expected one {prefixes} service, found {found}"
    return found[0]


def host_path(volume: str) -> Path:
    return (COMPOSE.parent / volume.split(":")[0]).resolve()


def test_has_every_service_of_the_deployment() -> None:
    names = set(services())
    assert {"postgres", "migrate", "node-1", "node-2", "gateway"} <= names
    by_image(("eclipse-mosquitto:", "emqx/emqx:", "emqx:"))
    by_image(("haproxy:", "nginx:"))
    by_image(("edoburu/pgbouncer:", "bitnami/pgbouncer:"))


def test_our_services_build_one_image_from_the_repository() -> None:
    built = ours()
    assert set(built) == {"migrate", "node-1", "node-2", "gateway"}
    for name, service in built.items():
        assert service["image"].endswith(f"/idnode:{VERSION}"), (name, service["image"])
        context = (COMPOSE.parent / service["build"]["context"]).resolve()
        assert context == ROOT, name
        assert (context / service["build"]["dockerfile"]).is_file(), name
    assert len({s["image"] for s in built.values()}) == 1


def test_commands_are_ones_the_cli_has() -> None:
    commands = {name: parse_idnode_command(argv(s)) for name, s in ours().items()}
    assert commands["migrate"].command.name == "migrate"
    assert commands["gateway"].command.name == "gateway"
    for node in NODES:
        assert commands[node].command.name == "serve"
        # migrate runs once before them; two nodes migrating at once would race.
        assert commands[node].params["no_migrate"], node
        assert commands[node].params["host"] == "0.0.0.0"


def test_nodes_start_after_the_migration_succeeds() -> None:
    all_services = services()
    assert all_services["migrate"]["restart"] == "no"
    for name in (*NODES, "gateway"):
        depends = all_services[name]["depends_on"]
        assert depends["migrate"]["condition"] == "service_completed_successfully", name


def test_every_idnode_variable_is_a_setting_the_node_reads() -> None:
    for name, service in ours().items():
        assert not unknown_variables(service.get("environment", {})), name
    assert not unknown_variables(EXAMPLE)


def test_every_interpolated_variable_is_in_the_env_example() -> None:
    used = set(INTERPOLATION.findall(COMPOSE.read_text()))
    assert used, "no ${VAR} in compose.yaml"
    assert used <= set(EXAMPLE), used - set(EXAMPLE)
    # The example holds placeholders only; real values go in the git-ignored deploy/.env.
    secrets = {"POSTGRES_PASSWORD", "IDNODE_ADMIN_TOKEN", "MQTT_GATEWAY_PASSWORD"}
    assert {EXAMPLE[name] for name in secrets} == {"change-me"}
    assert "deploy/.env" in (ROOT / ".dockerignore").read_text()


def test_database_url_names_the_postgres_service_and_its_database() -> None:
    """Migrations and the gateway talk to PostgreSQL; the nodes go through PgBouncer in
    transaction mode, saying so, with their LISTEN connection straight to PostgreSQL."""
    postgres = services()["postgres"]["environment"]
    pooler = by_image(("edoburu/pgbouncer:", "bitnami/pgbouncer:"))
    assert services()[pooler]["environment"]["POOL_MODE"] == "transaction"
    for name, service in ours().items():
        settings = env(service)
        direct = "IDNODE_DATABASE_LISTEN_URL" if name in NODES else "IDNODE_DATABASE_URL"
        urls = {settings["IDNODE_DATABASE_URL"], settings[direct]}
        for url in urls:
            assert url.startswith("postgresql+asyncpg://"), name
            assert url.rsplit("/", 1)[1] == postgres["POSTGRES_DB"], name
            assert url.split("://", 1)[1].split(":", 1)[0] == postgres["POSTGRES_USER"], name
        assert url_host(settings[direct])[0] == "postgres", name
        for key in ("IDNODE_DATABASE_URL", direct):
            assert "POSTGRES_PASSWORD" in service["environment"][key], name
        if name in NODES:
            assert url_host(settings["IDNODE_DATABASE_URL"])[0] == pooler, name
            assert settings["IDNODE_DATABASE_TRANSACTION_POOLER"] == "true", name


def test_gateway_reaches_the_broker_service_as_a_shared_group() -> None:
    broker = by_image(("eclipse-mosquitto:", "emqx/emqx:", "emqx:"))
    gateway = env(services()["gateway"])
    host, port = url_host(gateway["IDNODE_MQTT_URL"])
    assert host == broker
    listeners = re.findall(
        r"^listener (\d+)", (DEPLOY / "mosquitto/mosquitto.conf").read_text(), re.M
    )
    assert str(port or 1883) in listeners
    assert gateway["IDNODE_MQTT_SHARED_GROUP"]
    # The user of the URL is the one the ACL lets read every device's requests.
    assert gateway["IDNODE_MQTT_URL"].startswith("mqtt://idnode-gateway:")
    assert "user idnode-gateway" in (DEPLOY / "mosquitto/acl").read_text()


def test_broker_mounts_the_committed_config_and_keeps_passwords_out_of_git() -> None:
    broker = services()[by_image(("eclipse-mosquitto:",))]
    mounted = [host_path(v) for v in broker["volumes"] if v.startswith("./")]
    assert DEPLOY / "mosquitto/mosquitto.conf" in mounted
    assert all(path.exists() for path in mounted)
    secrets = yaml.safe_load(COMPOSE.read_text())["secrets"]
    passwd = secrets["mosquitto_passwd"]["file"]
    assert "deploy/" + passwd.removeprefix("./") in (ROOT / ".gitignore").read_text().split()


def test_nodes_have_a_healthcheck_on_a_health_endpoint() -> None:
    for name in NODES:
        service = services()[name]
        port = parse_idnode_command(argv(service)).params["port"]
        test = " ".join(service["healthcheck"]["test"])
        assert re.search(rf"127\.0\.0\.1:{port}/(healthz|readyz)\b", test), name
    assert services()["loadbalancer"]["depends_on"] == {
        "node-1": {"condition": "service_healthy"},
        "node-2": {"condition": "service_healthy"},
    }


def haproxy() -> tuple[str, list[tuple[str, int, str]]]:
    """The mounted HAProxy config and its backend servers (host, port, options)."""
    lb = services()[by_image(("haproxy:",))]
    (config,) = [host_path(v) for v in lb["volumes"] if v.split(":")[1].endswith("haproxy.cfg")]
    text = config.read_text()
    servers = []
    for match in re.finditer(r"^\s*server\s+\S+\s+([\w.-]+):(\d+)(.*)$", text, re.M):
        servers.append((match[1], int(match[2]), match[3]))
    return text, servers


def test_load_balancer_sends_to_both_nodes_and_checks_readiness() -> None:
    text, servers = haproxy()
    ports = {n: parse_idnode_command(argv(services()[n])).params["port"] for n in NODES}
    assert sorted((host, port) for host, port, _ in servers) == [
        ("node-1", ports["node-1"]),
        ("node-2", ports["node-2"]),
    ]
    defaults = re.search(r"^\s*default-server\s+(.*)$", text, re.M)
    for _, _, options in servers:
        assert "check" in options.split() or (defaults and "check" in defaults[1].split())
    assert re.search(r"^\s*option httpchk\b", text, re.M)
    assert re.search(r"^\s*http-check send meth GET uri /readyz\b", text, re.M)
    lb = services()[by_image(("haproxy:",))]
    bind = re.search(r"^\s*bind :(\d+)", text, re.M)
    assert bind
    assert any(p.endswith(f":{bind[1]}") for p in lb["ports"])


def test_nodes_share_their_signing_key_in_a_volume_the_image_prepares() -> None:
    """Both nodes sign reports to the top-level node with one key: its file is on a named
    volume mounted by both, at a directory the image creates for the node's user (so the
    volume starts writable by it, and the first node to start can create the key)."""
    nodes = [services()[name] for name in NODES]
    keys = {env(s)["IDNODE_NODE_KEY_FILE"] for s in nodes}
    assert len(keys) == 1, keys
    (key,) = keys
    mounts = [{tuple(v.split(":")[:2]) for v in s["volumes"]} for s in nodes]
    (shared,) = {m for m in mounts[0] if key.startswith(m[1] + "/")}
    assert all(shared in m for m in mounts)
    assert shared[0] in yaml.safe_load(COMPOSE.read_text())["volumes"]
    runtime = stages(dockerfile_instructions(DEPLOY / "Dockerfile"))[-1]
    prepared = " ".join(arguments for name, arguments in runtime if name == "RUN")
    assert f"install -d -o 10001 -g 10001 -m 700 {shared[1]}" in prepared


def test_the_nodes_read_a_standby_streaming_from_the_primary() -> None:
    """A hot standby copied from the postgres service with pg_basebackup -R (as the replica
    tests make theirs), which the primary lets in for replication, and which the nodes list
    as their read replica."""
    primary, replica = services()["postgres"], services()["postgres-replica"]
    assert replica["image"] == primary["image"]
    assert replica["depends_on"]["postgres"]["condition"] == "service_healthy"
    entrypoint = replica["entrypoint"]
    script_mount = next(v for v in replica["volumes"] if v.endswith(f"{entrypoint[-1]}:ro"))
    script = host_path(script_mount).read_text()
    assert re.search(r"pg_basebackup -h \"\$\{PRIMARY_HOST\}\" .*\n?.* -R -X stream", script)
    assert replica["environment"]["PRIMARY_HOST"] == "postgres"
    assert replica["environment"]["POSTGRES_USER"] == primary["environment"]["POSTGRES_USER"]
    assert "POSTGRES_PASSWORD" in replica["environment"]["PGPASSWORD"]
    assert any(v.startswith("pgdata-replica:") for v in replica["volumes"])

    init = next(v for v in primary["volumes"] if "/docker-entrypoint-initdb.d/" in v)
    assert "host replication ${POSTGRES_USER} all scram-sha-256" in host_path(init).read_text()
    assert "wal_keep_size=1GB" in primary["command"]

    for name in NODES:
        settings = env(services()[name])
        (url,) = settings["IDNODE_DATABASE_REPLICA_URLS"].split(",")
        assert url_host(url)[0] == "postgres-replica", name
        assert url.rsplit("/", 1)[1] == primary["environment"]["POSTGRES_DB"], name
        assert services()[name]["depends_on"]["postgres-replica"]["condition"] == "service_started"
