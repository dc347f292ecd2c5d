"""Starting the teaching page: beside a lab this process runs (`vsplab run --ui`), or against a lab
that runs elsewhere on this machine (`vsplab ui --vsd URL`). Either way the page reads the lab through
its control socket, the VSD through its REST API and the VSCs through their status ports."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
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


def beside(sock: Path, vsd_api: str, user: str, password: str, org: str, port: int, stack) -> str:
    """The page in a process of its own (`vsplab ui`) beside a lab this process runs, stopped with it
    (`stack`); returns its URL. Its own process, so that the lab's threads and the page's never wait
    for each other's turn at the interpreter lock: inside a 40-host lab's process a host's flows took
    the page twice as long."""
    child = UiProcess(["ui", "--vsd", vsd_api, "--user", user, "--password", password, "--org", org,
                       "--lab", str(sock.parent), "--port", str(port)], timeout=120, grace=10, stop=signal.SIGTERM)
    stack.enter_context(child)
    return child.url


def for_lab(lab, sock: Path, port: int = 0) -> str:
    """Beside a scenario lab (vsplab/lab/base.py): its control socket, its VSD with the lab's credentials."""
    if lab.vsd is not None:
        return beside(sock, lab.vsd.api, lab.vsd.user, lab.vsd.password, lab.vsd.enterprise, port, lab.stack)
    return beside(sock, lab.external_vsd, "csproot", "csproot", "csp", port, lab.stack)  # what the lab logs in with


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


class UiProcess:
    """`vsplab ARGS` (a lab or a benchmark with --ui, or `vsplab ui` itself) as a child process: started,
    its `UI at` line awaited, stopped on exit with `stop` (Ctrl-C's SIGINT by default) - killed only if
    it has not stopped within `grace` seconds. `lines` holds everything it printed."""

    def __init__(self, args: list[str], env: dict | None = None, timeout: float = 180.0, grace: float = 60.0,
                 stop: int = signal.SIGINT):
        self.args, self.env, self.timeout, self.grace, self.stop = args, env, timeout, grace, stop
        self.lines: list[str] = []
        self.url = ""
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> UiProcess:
        self.proc = subprocess.Popen([sys.executable, "-m", "vsplab.cli", *self.args],
                                     env={**os.environ, "COLUMNS": "300", **(self.env or {})},
                                     stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        found = threading.Event()

        def read():
            for line in self.proc.stdout:
                self.lines.append(line)
                if line.startswith("UI at "):
                    self.url = line.split()[-1]
                    found.set()
        threading.Thread(target=read, name="vl-ui-child-output", daemon=True).start()
        if not found.wait(self.timeout):
            self.__exit__()
            raise RuntimeError(f"`vsplab {' '.join(self.args)}` printed no `UI at` line within {self.timeout:.0f} s:\n"
                               + "".join(self.lines[-30:]))
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(self.stop)
        try:
            self.proc.wait(self.grace)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
