"""What a benchmark reads about the processes it runs, from /proc: CPU seconds, resident and peak
resident memory, a process's children, and the machine's load (other jobs on a shared 2-core machine
slow a wall clock, not the CPU seconds, so every result records them)."""

from __future__ import annotations

import os
from pathlib import Path


def cpu_seconds(pid: int) -> float:
    """User + system CPU of a process (all its threads) so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def thread_cpu_seconds(pid: int, tid: int) -> float:
    """User + system CPU of one thread (the simulated VRSs' event loop shares its process)."""
    fields = Path(f"/proc/{pid}/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _status_kb(pid: int, key: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key):
            return int(line.split()[1])
    return 0


def rss_mb(pid: int) -> int:
    return _status_kb(pid, "VmRSS:") // 1024


def peak_rss_mb(pid: int) -> int:
    """The most the process has held resident since it started (the kernel's high-water mark)."""
    return _status_kb(pid, "VmHWM:") // 1024


def children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                if int((d / "stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                    out.append(int(d.name))
            except (OSError, IndexError, ValueError):
                pass
    return out


def argv(pid: int) -> list[str]:
    """A process's command line as its arguments ([] once it is gone)."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return []
    return raw.decode(errors="replace").split("\0")[:-1]


def cmdline(pid: int) -> str:
    return " ".join(argv(pid))


def load_average() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)
