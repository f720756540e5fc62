"""deploy/Dockerfile, read statically (no Docker engine in CI): what `docker build` and
`docker run` would do with it."""

from __future__ import annotations

import fnmatch
import re

import click
import pytest

from tests.deploy.manifests import (
    DEPLOY,
    ROOT,
    dockerfile_env,
    dockerfile_instructions,
    idnode_argv,
    image_argv,
    last,
    parse_idnode_command,
    stages,
    unknown_variables,
)

DOCKERFILE = DEPLOY / "Dockerfile"


def final_stage() -> list[tuple[str, str]]:
    return stages(dockerfile_instructions(DOCKERFILE))[-1]


def test_the_command_check_refuses_what_the_cli_refuses() -> None:
    parse_idnode_command(["serve", "--no-migrate", "--port", "8000"])
    with pytest.raises(click.UsageError):
        parse_idnode_command(["serve", "--no-such-flag"])
    with pytest.raises(click.UsageError):
        parse_idnode_command(["server"])


def test_builds_in_stages_and_runs_as_a_numeric_non_root_user() -> None:
    built = stages(dockerfile_instructions(DOCKERFILE))
    assert len(built) >= 2
    # The runtime copies the installed venv from the build stage, not the source tree.
    assert any(name == "COPY" and arguments.startswith("--from=") for name, arguments in built[-1])
    user = last(built[-1], "USER")
    assert user is not None, "the final stage runs as root"
    for part in user.split(":"):
        # Numeric, so Kubernetes' runAsNonRoot can verify it without the image's passwd.
        assert part.isdigit(), user
        assert int(part) != 0, user


def test_runs_idnode_serve_with_flags_the_cli_has() -> None:
    stage = final_stage()
    entrypoint, command = image_argv(stage)
    context = parse_idnode_command(idnode_argv(entrypoint + command))
    assert context.command.name == "serve"
    assert context.params["host"] == "0.0.0.0"  # reachable from outside the container
    exposed = last(stage, "EXPOSE")
    assert exposed is not None
    assert int(exposed.split("/")[0]) == context.params["port"]


def test_healthcheck_asks_the_liveness_endpoint_on_the_served_port() -> None:
    stage = final_stage()
    healthcheck = last(stage, "HEALTHCHECK")
    assert healthcheck is not None
    entrypoint, command = image_argv(stage)
    port = parse_idnode_command(idnode_argv(entrypoint + command)).params["port"]
    assert re.search(rf"127\.0\.0\.1:{port}/healthz\b", healthcheck), healthcheck


def test_sets_only_settings_the_node_reads() -> None:
    env = {}
    for stage in stages(dockerfile_instructions(DOCKERFILE)):
        env.update(dockerfile_env(stage))
    assert not unknown_variables(env)
    # The SQLite default lives in the image's volume, writable by its user.
    volume = last(final_stage(), "VOLUME")
    assert volume is not None
    assert env["IDNODE_DATABASE_URL"].endswith(f"//{volume}/idnode.db")


def dockerignore() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def ignored(path: str) -> bool:
    return any(
        fnmatch.fnmatch(path, pattern) or path.startswith(pattern.rstrip("/") + "/")
        for pattern in dockerignore()
    )


def test_copies_only_files_that_exist_and_are_in_the_build_context() -> None:
    sources = []
    for stage in stages(dockerfile_instructions(DOCKERFILE)):
        for name, arguments in stage:
            if name in ("COPY", "ADD") and not arguments.startswith("--from="):
                sources += arguments.split()[:-1]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source), f"COPY {source}: excluded by .dockerignore"


def test_build_context_leaves_out_local_state() -> None:
    patterns = dockerignore()
    for needed in (".venv", ".git", "*.db"):
        assert needed in patterns
    assert ignored("loadtests/results/resolve-1.json")
    assert ignored("idnode.db")
