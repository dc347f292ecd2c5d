"""What a Mininet lab leaves if it dies before its teardown ran (SIGKILL, power cut), and removing it.

A killed lab's Mininet driver sees its stdin close and still runs `net.stop()`; what stays is the
vl-mn namespace (with the lab's OVS in it), the hosts' namespace names, the management veth, and the
VSD and VSC subprocesses. Before it makes anything, a lab writes a manifest naming its directory; every
process it started carries that directory on its command line (database, state dir, OVS run dir), so
cleanup kills exactly those and never another lab's. `python -m vsplab.mininet cleanup` runs it."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from vsplab.emu.netns import kill_pids
from vsplab.mininet.fabric import MininetFabric

MANIFEST = Path(os.environ.get("VSPLAB_MININET_MANIFEST", "/run/vsplab-mininet.json"))
CLEANUP_COMMAND = "python -m vsplab.mininet cleanup"


class LeftoversError(RuntimeError):
    pass


def _start_time(pid: int) -> int | None:
    """With the pid, names one process for good (a recycled pid has another start time)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


def record(workdir: Path) -> None:
    tmp = MANIFEST.with_suffix(".tmp")
    tmp.write_text(json.dumps({"pid": os.getpid(), "started": _start_time(os.getpid()), "workdir": str(workdir)}))
    tmp.replace(MANIFEST)


def _manifest() -> dict | None:
    try:
        return json.loads(MANIFEST.read_text())
    except (OSError, ValueError):
        return None


def _running(m: dict) -> bool:
    return m["pid"] != os.getpid() and m.get("started") is not None and _start_time(m["pid"]) == m["started"]


def lab_processes(workdir: str) -> list[int]:
    mark = workdir.rstrip("/") + "/"
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            args = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if mark in args and int(proc.name) != os.getpid():
            pids.append(int(proc.name))
    return pids


def find() -> list[str]:
    found = []
    m = _manifest()
    if m is not None:
        if _running(m):
            return [f"a Mininet lab is running (pid {m['pid']}, {m['workdir']})"]
        found.append(f"manifest {MANIFEST} of a lab that did not clean up (pid {m['pid']})")
        found += [f"process {p}" for p in lab_processes(m["workdir"])]
        if Path(m["workdir"]).exists():
            found.append(f"directory {m['workdir']}")
    return found + MininetFabric.leftovers()


def check_clean() -> None:
    found = find()
    if found:
        raise LeftoversError("another Mininet lab runs, or one left these behind (remove them with "
                             f"`{CLEANUP_COMMAND}`):\n  " + "\n  ".join(found))


def cleanup() -> list[str]:
    m = _manifest()
    if m is not None and _running(m):
        raise LeftoversError(f"a Mininet lab is still running (pid {m['pid']}); stop it first (Ctrl-C)")
    found = find()
    if m is not None:
        kill_pids(lab_processes(m["workdir"]))
    MininetFabric(Path(m["workdir"] if m else "/nonexistent"), 1).stop()
    if m is not None:
        shutil.rmtree(m["workdir"], ignore_errors=True)
        MANIFEST.unlink(missing_ok=True)
    return found
