"""Reading deploy/ the way its consumers do, and checking it against the node's own code.

Nothing here knows the node's flags or settings by heart: commands are parsed by the click
CLI itself, variable names come from ``Settings`` and the CLI's ``envvar`` options.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click
import yaml

from app.cli import main as cli
from app.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
VERSION = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
# ${VAR}, ${VAR:-default}, ${VAR:?message}: compose's interpolation.
INTERPOLATION = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::?[-?][^}]*)?\}")


def idnode_variables() -> set[str]:
    """Every IDNODE_* variable the node reads: Settings fields and CLI option envvars."""
    names = {f"IDNODE_{field.upper()}" for field in Settings.model_fields}
    for command in cli.commands.values():
        for param in command.params:
            envvar = getattr(param, "envvar", None)
            if isinstance(envvar, str):
                names.add(envvar)
    return names


def unknown_variables(names: object) -> set[str]:
    """The IDNODE_* names among ``names`` that the node does not read."""
    assert isinstance(names, dict | list | set), names
    return {n for n in names if str(n).startswith("IDNODE_")} - idnode_variables()


def parse_idnode_command(argv: list[str]) -> click.Context:
    """Parse ``idnode <argv>`` with the real CLI (UsageError on a missing command or flag)."""
    if not argv or argv[0] not in cli.commands:
        raise click.UsageError(f"idnode has no command {argv[:1]}")
    command = cli.commands[argv[0]]
    return command.make_context(argv[0], list(argv[1:]))


def idnode_argv(argv: list[str]) -> list[str]:
    """Strip the program from a command line that runs the ``idnode`` console script."""
    program, *rest = argv
    assert Path(program).name == "idnode", f"{argv} does not run idnode"
    return rest


def yaml_documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def interpolate(value: str, variables: dict[str, str]) -> str:
    """Compose's ${VAR...} substitution, from ``variables`` (e.g. deploy/.env.example)."""
    return INTERPOLATION.sub(lambda m: variables[m[1]], value)


def env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines (comments and blanks skipped), as docker compose and systemd read them."""
    pairs = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            pairs[key.strip()] = value.strip()
    return pairs


def url_host(url: str) -> tuple[str | None, int | None]:
    parts = urlsplit(url)
    return parts.hostname, parts.port


# --- Dockerfile ---


def dockerfile_instructions(path: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, continuation lines joined, comments dropped."""
    lines = [line for line in path.read_text().splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def stages(instructions: list[tuple[str, str]]) -> list[list[tuple[str, str]]]:
    """The instructions of each build stage, split at FROM (each stage starts with it)."""
    result: list[list[tuple[str, str]]] = []
    for instruction, arguments in instructions:
        if instruction == "FROM":
            result.append([])
        assert result, "the Dockerfile must start with FROM"
        result[-1].append((instruction, arguments))
    return result


def exec_form(arguments: str) -> list[str]:
    """A CMD/ENTRYPOINT's argv: the JSON exec form, or shell words."""
    if arguments.startswith("["):
        return [str(word) for word in json.loads(arguments)]
    return shlex.split(arguments)


def last(stage: list[tuple[str, str]], instruction: str) -> str | None:
    values = [arguments for name, arguments in stage if name == instruction]
    return values[-1] if values else None


def image_argv(stage: list[tuple[str, str]]) -> tuple[list[str], list[str]]:
    """The final stage's ENTRYPOINT and CMD."""
    entrypoint, command = last(stage, "ENTRYPOINT"), last(stage, "CMD")
    return (
        exec_form(entrypoint) if entrypoint else [],
        exec_form(command) if command else [],
    )


def dockerfile_env(stage: list[tuple[str, str]]) -> dict[str, str]:
    """ENV KEY=VALUE pairs of a stage (the KEY VALUE legacy form is not used here)."""
    pairs = {}
    for instruction, arguments in stage:
        if instruction == "ENV":
            for word in shlex.split(arguments):
                key, _, value = word.partition("=")
                pairs[key] = value
    return pairs
