"""ExaBGP as a child process, its working directory, and its API relay's connection to us.

ExaBGP starts in its own session (so one signal to its process group reaches it and whatever it
forks), its log lines go to Python logging, it is stopped with SIGTERM then SIGKILL. The relay it
runs puts itself in another process group (ExaBGP calls setpgrp for its helpers), so the speaker
ends the relay by its own PID (and start time) as well.

A speaker killed outright (SIGKILL, OOM) stops nothing itself, and its own session keeps ExaBGP out
of its process group's reach: ExaBGP kept the BGP session up for as long as the peer did (measured:
ExaBGP does not notice its relay's exit while nothing is sent), so the peer never withdrew our
routes. So ExaBGP is started through `python -m vsc.bgp.exabgp_process` (`main` below), which asks
the kernel for SIGTERM when its parent dies and then becomes ExaBGP: ExaBGP closes its sessions with
a NOTIFICATION and the peers withdraw at once. The temporary directory a killed speaker leaves is
removed by the next speaker of that name to start (`working_dir`).
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

log = logging.getLogger("vsc.bgp.exabgp")

PR_SET_PDEATHSIG = 1  # <linux/prctl.h>


def exabgp_command(config_file: str | Path) -> list[str]:
    """ExaBGP from the virtualenv this Python runs in, bound to die with this process (see `main`)."""
    script = Path(sys.executable).parent / "exabgp"
    exabgp = [str(script)] if script.exists() else [sys.executable, "-m", "exabgp"]
    return [sys.executable, "-m", "vsc.bgp.exabgp_process", str(os.getpid()), *exabgp, str(config_file)]


def main(argv: list[str]) -> int:
    """`python -m vsc.bgp.exabgp_process PARENT_PID COMMAND...`: SIGTERM when the thread that started
    us exits (the speaker's supervisor, which outlives every ExaBGP it starts), then exec COMMAND; the
    death signal survives exec. A parent gone before the prctl took effect shows as another PPID."""
    if len(argv) < 2 or not argv[0].isdigit():
        print("usage: python -m vsc.bgp.exabgp_process PARENT_PID COMMAND...", file=sys.stderr)
        return 2
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM) != 0:
        print(f"exabgp_process: prctl(PR_SET_PDEATHSIG): {os.strerror(ctypes.get_errno())}", file=sys.stderr)
        return 1
    if os.getppid() != int(argv[0]):
        return 1  # the speaker died while we started: nobody would ever stop this ExaBGP
    os.execv(argv[1], argv[1:])


def working_dir(name: str) -> Path:
    """A new temporary directory for one speaker's ExaBGP configuration and relay socket, named
    "NAME-pidPID-XXXXXXXX"; first the directories of speakers of that name whose process is gone."""
    tmp = Path(tempfile.gettempdir())
    owned = re.compile(rf"{re.escape(name)}-pid(\d+)-[^-]+")
    for entry in tmp.glob(f"{name}-pid*-*"):
        m = owned.fullmatch(entry.name)
        if m and entry.is_dir() and not _alive(int(m.group(1))):
            shutil.rmtree(entry, ignore_errors=True)
    return Path(tempfile.mkdtemp(prefix=f"{name}-pid{os.getpid()}-", dir=tmp))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process: not ours to judge
    return True


class ExabgpProcess:
    def __init__(self, argv: Sequence[str], env: dict[str, str], cwd: str | Path) -> None:
        self.argv, self.env, self.cwd = list(argv), env, str(cwd)
        self.proc: subprocess.Popen | None = None
        self.stopped: subprocess.Popen | None = None  # once stop() has reaped it
        self.tail: collections.deque[str] = collections.deque(maxlen=40)
        self._logger: threading.Thread | None = None
        self._stopping = threading.Lock()

    def start(self) -> int:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=self.cwd, stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     start_new_session=True)
        self._logger = threading.Thread(target=self._log_stderr, args=(self.proc,),
                                        name=f"exabgp-log-{self.proc.pid}", daemon=True)
        self._logger.start()
        return self.proc.pid

    @property
    def pid(self) -> int | None:
        proc = self.proc or self.stopped
        return proc.pid if proc else None

    def alive(self) -> bool:
        proc = self.proc
        return proc is not None and proc.poll() is None

    def returncode(self) -> int | None:
        proc = self.proc or self.stopped
        return proc.poll() if proc else None

    def last_lines(self) -> str:
        return "\n".join(self.tail)

    def _log_stderr(self, proc: subprocess.Popen) -> None:
        for raw in proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            if line:
                self.tail.append(line)
                log.debug("[%d] %s", proc.pid, line)
        proc.stderr.close()

    def stop(self, timeout: float = 3.0) -> None:
        """SIGTERM to ExaBGP's process group, SIGKILL if it lingers; reaped. Signals go out only while
        the leader is unreaped, so the group ID cannot have been reused by some other program."""
        with self._stopping:  # the supervisor and Speaker.stop may both get here
            proc, self.proc = self.proc, None
            if proc is None:
                return
            self.stopped = proc
        if proc.poll() is None:
            _signal_group(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                log.warning("ExaBGP %d ignored SIGTERM for %.0f s, killing it", proc.pid, timeout)
                _signal_group(proc.pid, signal.SIGKILL)
                proc.wait()
        if self._logger is not None:
            self._logger.join(1.0)  # its last words, for whoever reports the exit


def _signal_group(pgid: int, sig: int) -> None:
    try:
        os.killpg(pgid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def process_identity(pid: int) -> tuple[int, int] | None:
    """(pid, start time in clock ticks since boot): names one process even after its PID is reused."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return pid, int(fields[19])
    except (OSError, ValueError, IndexError):
        return None


def parent_of(pid: int) -> int | None:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return None


def kill_identified(identity: tuple[int, int] | None) -> None:
    """SIGKILL the process `identity` names, if it is still that process."""
    if identity is None or process_identity(identity[0]) != identity:
        return
    try:
        os.kill(identity[0], signal.SIGKILL)
    except ProcessLookupError:
        pass


def accept_relay(listener: socket.socket, exabgp: ExabgpProcess,
                 stopping: threading.Event) -> tuple[socket.socket, tuple[int, int] | None] | None:
    """The relay's connection and the relay's identity: only a child of this ExaBGP is accepted
    (SO_PEERCRED names the connecting process). None if ExaBGP died or we are stopping first.
    `listener` must have a timeout, so that both are noticed."""
    while not stopping.is_set() and exabgp.alive():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        pid = struct.unpack("3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12))[0]
        if parent_of(pid) != exabgp.pid:
            log.warning("refused a relay connection from pid %d, not a child of ExaBGP %s", pid, exabgp.pid)
            conn.close()
            continue
        conn.settimeout(None)
        return conn, process_identity(pid)
    return None


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
