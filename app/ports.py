"""Is a port free? One probe for every port the node listens on before it starts.

The servers bind with SO_REUSEPORT (workers share a port), which would also let a second
node share the port of the first without a word; the probe binds without it, so any
listener already there refuses it.
"""

from __future__ import annotations

import socket
from collections.abc import Iterable

TCP = (socket.SOCK_STREAM,)
TCP_AND_UDP = (socket.SOCK_STREAM, socket.SOCK_DGRAM)


class PortTaken(Exception):
    """The port cannot be listened on; the message is ``host:port: reason``."""


class UnknownHost(PortTaken):
    """The host name does not resolve to an address to listen on."""


def probe(host: str, port: int, kinds: Iterable[socket.SocketKind] = TCP) -> None:
    """Raise :class:`PortTaken` when ``host:port`` cannot be bound for each socket type in
    ``kinds`` (a host name is resolved as the servers resolve it, with ``getaddrinfo``)."""
    for kind in kinds:
        try:
            family, _kind, proto, _name, address = socket.getaddrinfo(
                host, port, type=kind, flags=socket.AI_PASSIVE
            )[0]
        except socket.gaierror as exc:
            raise UnknownHost(f"{host}:{port}: {exc.strerror}") from exc
        with socket.socket(family, kind, proto) as sock:
            if kind == socket.SOCK_STREAM:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do
            try:
                sock.bind(address)
            except OSError as exc:
                raise PortTaken(f"{host}:{port}: {exc.strerror}") from exc
