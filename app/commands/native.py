"""``idnode resolve``: ask a Handle protocol server (this node by default), over TCP or UDP."""

from __future__ import annotations

import asyncio
import sys

import click

from app.commands.database import (
    echo_json,
    settings_from_env,
)
from resolver.handle_protocol.bodies import Query
from resolver.handle_protocol.client import (
    Answer,
    HandleClient,
    HandleProtocolError,
    request_message,
    udp_request,
)
from resolver.handle_protocol.message import OC_RESOLUTION, MalformedMessage


@click.command()
@click.argument("handle")
@click.option(
    "--native",
    "address",
    metavar="HOST:PORT",
    help="Ask this Handle protocol server (default: this node, 127.0.0.1:IDNODE_HANDLE_PORT).",
)
@click.option("--type", "types", multiple=True, help="Only values of this type (repeatable).")
@click.option("--index", "indexes", multiple=True, type=int, help="Only this index (repeatable).")
@click.option("--udp", is_flag=True, help="One datagram instead of a TCP connection.")
def resolve(
    handle: str, address: str | None, types: tuple[str, ...], indexes: tuple[int, ...], udp: bool
) -> None:
    """Resolve HANDLE over the Handle protocol and print the answer as Handle JSON."""
    host, port = _native_address(address or f"127.0.0.1:{settings_from_env().handle_port}")
    query = Query(handle, indexes, types)
    try:
        answer = asyncio.run(_ask_natively(host, port, query, udp=udp))
    except (HandleProtocolError, MalformedMessage) as exc:
        raise click.ClickException(str(exc)) from exc
    if answer.code != 1:
        echo_json({"responseCode": answer.code, "handle": handle, "message": answer.error})
        sys.exit(1)
    name, values = answer.values()
    echo_json({"responseCode": 1, "handle": name, "values": values})


def _native_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not host or not port.isdigit():
        raise click.BadParameter(f"{address!r} is not HOST:PORT", param_hint="--native")
    return host.strip("[]"), int(port)


async def _ask_natively(host: str, port: int, query: Query, *, udp: bool) -> Answer:
    if udp:
        return await udp_request(host, port, request_message(OC_RESOLUTION, query.pack()))
    client = await HandleClient.connect(host, port)
    try:
        return await client.resolve(query.handle, indexes=query.indexes, types=query.types)
    finally:
        await client.close()
