"""deploy/systemd: the units run commands the CLI has, hardened, reading one env file."""

from __future__ import annotations

import configparser
import shlex
from pathlib import Path

from tests.deploy.manifests import (
    DEPLOY,
    env_file,
    idnode_argv,
    parse_idnode_command,
    unknown_variables,
)

SYSTEMD = DEPLOY / "systemd"
ENV_FILE = "/etc/idnode/idnode.env"


def unit(path: Path) -> configparser.RawConfigParser:
    # systemd's syntax is INI-like: sections, Key=Value, '#' comments, no interpolation
    # ('%i' is systemd's own). strict: a key given twice in a section is an error here.
    parser = configparser.RawConfigParser(strict=True, delimiters=("=",))
    parser.optionxform = str  # type: ignore[method-assign]  # keep Key case
    parser.read_string(path.read_text())
    return parser


def units() -> dict[str, configparser.RawConfigParser]:
    return {path.name: unit(path) for path in sorted(SYSTEMD.glob("*.service"))}


def test_units_run_serve_and_gateway_with_flags_the_cli_has() -> None:
    commands = {}
    for name, parsed in units().items():
        argv = idnode_argv(shlex.split(parsed["Service"]["ExecStart"]))
        commands[parse_idnode_command(argv).command.name] = name
    assert set(commands) == {"serve", "gateway"}


def test_units_are_hardened_and_write_only_their_state_directory() -> None:
    for name, parsed in units().items():
        service = parsed["Service"]
        # The SQLite file and the node key live in the data directory, which
        # ProtectSystem=strict would leave read-only without ReadWritePaths.
        data_dir = service["Environment"].split("IDNODE_DATA_DIR=")[1].split()[0]
        assert data_dir in service["ReadWritePaths"].split(), name
        assert service["NoNewPrivileges"] == "true", name
        assert service["ProtectSystem"] == "strict", name
        assert service.get("DynamicUser") == "yes" or service.get("User", "root") != "root"
        assert service["WorkingDirectory"] in service["ReadWritePaths"].split(), name
        assert service["EnvironmentFile"] == ENV_FILE, name
        assert parsed["Install"]["WantedBy"] == "multi-user.target", name


def test_env_example_sets_only_settings_the_node_reads() -> None:
    example = env_file(SYSTEMD / "idnode.env.example")
    assert example
    assert not unknown_variables(example)
    assert ENV_FILE in (SYSTEMD / "idnode.service").read_text().split("[Unit]")[0]
