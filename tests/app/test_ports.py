"""The one port probe (``app.ports``): a port another program holds is refused, over each
socket type asked for."""

from __future__ import annotations

import re
import socket

import pytest

from app import ports


def test_a_free_port_passes_for_tcp_and_udp() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    ports.probe("127.0.0.1", port, ports.TCP_AND_UDP)  # nothing raised


def test_a_tcp_listener_refuses_the_port() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(ports.PortTaken, match=re.escape(f"127.0.0.1:{port}: ")):
            ports.probe("127.0.0.1", port)


def test_a_udp_socket_refuses_the_port_only_when_udp_is_probed() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as holder:
        holder.bind(("127.0.0.1", 0))
        port = holder.getsockname()[1]
        ports.probe("127.0.0.1", port)  # TCP alone: free
        with pytest.raises(ports.PortTaken, match=re.escape(f"127.0.0.1:{port}: ")):
            ports.probe("127.0.0.1", port, ports.TCP_AND_UDP)
