"""Free TCP ports on loopback for the processes a lab, a test or a benchmark starts (VSC OpenFlow,
agent and status ports, a test's PostgreSQL, the one port all of a lab's BGP speakers listen on).

The port is free when asked: the kernel picks it and the socket closes again, so another process
could take it before the caller binds it. Fine on a lab machine; a server that can bind its own
socket should bind port 0 and report what it got instead (vsd.server.EmbeddedVsd does)."""

from __future__ import annotations

import socket


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def free_port_on(addresses: list[str], attempts: int = 50) -> int:
    """A port free on every one of `addresses` (the kernel's pick on the first, tried on the rest)."""
    for _ in range(attempts):
        port = free_port(addresses[0])
        try:
            for address in addresses[1:]:
                with socket.socket() as s:
                    s.bind((address, port))
            return port
        except OSError:
            continue
    raise RuntimeError(f"no TCP port free on all of {', '.join(addresses)} after {attempts} tries")
