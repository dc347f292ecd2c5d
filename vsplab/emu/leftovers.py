"""What an emulated lab leaves behind if it dies before its cleanup ran (SIGKILL, power cut), how to
find it, and how to remove it.

Before it creates anything, a lab writes a manifest naming every namespace, link, process and
directory it is about to make; cleanup removes exactly those (plus the fixed-name fabric), so it
never touches another tool's `vl-` objects. `python -m vsplab.emu cleanup` runs it from a shell."""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vsplab.emu.host import MGMT_BRIDGE, UNDERLAY_NS
from vsplab.emu.netns import kill_pids, link_delete, links, netns_delete, netns_exists, netns_list

MANIFEST = Path(os.environ.get("VSPLAB_EMU_MANIFEST", "/run/vsplab-emu.json"))
CLEANUP_COMMAND = f"{sys.executable} -m vsplab.emu cleanup"
_ROOT_LINK = re.compile(r"^vl-m\d+$")  # the root ends of host management veths


class LeftoversError(RuntimeError):
    pass


def _start_time(pid: int) -> int | None:
    """The process's start time in clock ticks since boot: with the pid, it names one process for good."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None


@dataclass
class Manifest:
    pid: int
    workdir: str
    started: int | None = None  # the owning process's start time (_start_time), set by save()
    netns: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    # pid -> a word its command line must contain, so a recycled pid is never killed
    processes: dict[str, str] = field(default_factory=dict)

    def save(self) -> None:
        if self.started is None:
            self.started = _start_time(self.pid)
        tmp = MANIFEST.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(MANIFEST)

    def add_process(self, pid: int, marker: str) -> None:
        self.processes[str(pid)] = marker
        self.save()

    @staticmethod
    def load() -> Manifest | None:
        try:
            return Manifest(**json.loads(MANIFEST.read_text()))
        except (OSError, ValueError, TypeError):
            return None


def _running_elsewhere(m: Manifest) -> bool:
    """The manifest's lab is alive in another process (same pid and start time: not a reused pid)."""
    return m.pid != os.getpid() and m.started is not None and _start_time(m.pid) == m.started


def _cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def find(planned_netns: list[str] = ()) -> list[str]:
    """Every trace of an emulated lab (or a clash with one about to start), described for humans."""
    found = []
    m = Manifest.load()
    if m is not None:
        if _running_elsewhere(m):
            found.append(f"an emulated lab is running (pid {m.pid}, {m.workdir})")
        else:
            found.append(f"manifest {MANIFEST} of a lab that did not clean up (pid {m.pid})")
            found += [f"process {p} ({w})" for p, w in m.processes.items() if w in _cmdline(int(p))]
            if Path(m.workdir).exists():
                found.append(f"directory {m.workdir}")
    existing = set(netns_list())
    wanted = {UNDERLAY_NS, *planned_netns, *(m.netns if m else [])}
    found += [f"network namespace {n}" for n in sorted(existing) if n in wanted or n.startswith("vl-c-")]
    found += [f"link {n}" for n in links() if n == MGMT_BRIDGE or _ROOT_LINK.match(n)]
    return found


def check_clean(planned_netns: list[str]) -> None:
    found = find(planned_netns)
    if found:
        raise LeftoversError("leftovers of a previous emulated lab (remove them with "
                             f"`{CLEANUP_COMMAND}`):\n  " + "\n  ".join(found))


def cleanup(manifest: Manifest | None = None, force: bool = False) -> list[str]:
    """Remove everything `find()` reports (a running lab's objects only with force); what was removed."""
    m = manifest or Manifest.load()
    if m is not None and not force and _running_elsewhere(m):
        raise LeftoversError(f"an emulated lab is still running (pid {m.pid}); stop it first (Ctrl-C)")
    removed = []
    if m is not None:
        pids = [int(p) for p, word in m.processes.items() if word in _cmdline(int(p))]
        kill_pids(pids)
        removed += [f"process {p}" for p in pids]
    names = set(m.netns if m else []) | {UNDERLAY_NS}
    for n in netns_list():
        if n in names or n.startswith("vl-c-"):
            netns_delete(n)
            removed.append(f"network namespace {n}")
    for n in links():
        if n == MGMT_BRIDGE or _ROOT_LINK.match(n) or (m and n in m.links):
            link_delete(n)
            removed.append(f"link {n}")
    if m is not None:
        if Path(m.workdir).exists():
            shutil.rmtree(m.workdir, ignore_errors=True)
            removed.append(f"directory {m.workdir}")
        MANIFEST.unlink(missing_ok=True)
    for n in names:
        if netns_exists(n):
            removed.append(f"(still there: network namespace {n})")
    return removed
