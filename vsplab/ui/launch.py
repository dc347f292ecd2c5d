"""Starting the teaching page: beside a lab this process runs (`vsplab run --ui`), or against a lab
that runs elsewhere on this machine (`vsplab ui --vsd URL`). Either way the page reads the lab through
its control socket, the VSD through its REST API and the VSCs through their status ports."""

from __future__ import annotations

import socket
from pathlib import Path

from vsd.client import VsdClient
from vsplab.lab.control import LabControl
from vsplab.ui.server import UiServer
from vsplab.ui.source import LabSource


def serve(control: LabControl, vsd: VsdClient | None, port: int = 0) -> UiServer:
    """The page on 127.0.0.1:`port` (0: any free port), serving in a background thread; the topology
    laid out once before it is announced, so the first visitor does not wait for networkx."""
    server = UiServer(LabSource(control, vsd), port).start()
    try:
        server.topology_svg(server.source.lab())
    except Exception:  # a lab still coming up: its first page will lay it out instead
        pass
    return server


def for_lab(lab, sock: Path, port: int = 0) -> UiServer:
    """Beside a lab of this process: its control socket, and its VSD with the lab's own credentials."""
    if lab.vsd is not None:
        vsd = VsdClient(lab.vsd.api, lab.vsd.user, lab.vsd.password, lab.vsd.enterprise)
    else:
        vsd = VsdClient(lab.external_vsd)
    server = serve(LabControl(sock), vsd, port)
    lab.stack.callback(server.close)
    return server


def port_taken(port: int) -> str:
    """Why the page could not listen on 127.0.0.1:`port` ("" if it can): asked before a lab starts,
    so a taken port is refused at once rather than after a large lab's bring-up."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError as e:
            return e.strerror or str(e)
    return ""
