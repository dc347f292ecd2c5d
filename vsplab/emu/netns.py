"""Network namespaces, links and commands run inside them: the few iproute2 operations the emulated
hosts need. Every object the emulator makes is named with `PREFIX`, so leftovers can be found."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import time
from pathlib import Path

PREFIX = "vl-"
IFNAMSIZ = 15  # the kernel's limit on interface names (16 bytes with the NUL)
NETNS_DIR = Path("/var/run/netns")


class CommandError(RuntimeError):
    pass


def run(*cmd: str, ns: str | None = None, env: dict | None = None, check: bool = True,
        timeout: float = 30.0) -> str:
    full = (["ip", "netns", "exec", ns] if ns else []) + list(cmd)
    r = subprocess.run(full, capture_output=True, text=True, env=env, timeout=timeout)
    if check and r.returncode:
        raise CommandError(f"{' '.join(full)}: {(r.stderr or r.stdout).strip()}")
    return r.stdout


def ifname(prefix: str, name: str) -> str:
    """`prefix + name`, shortened with a stable hash when it would not fit in IFNAMSIZ, so two long
    container names never collide on one truncated name."""
    full = prefix + name
    if len(full) <= IFNAMSIZ:
        return full
    digest = hashlib.blake2b(name.encode(), digest_size=2).hexdigest()
    return full[: IFNAMSIZ - 5] + "-" + digest


def netns_list() -> list[str]:
    out = run("ip", "netns", "list", check=False)
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_exists(name: str) -> bool:
    return (NETNS_DIR / name).exists()


def netns_add(name: str) -> None:
    run("ip", "netns", "add", name)
    run("ip", "link", "set", "lo", "up", ns=name)


def netns_pids(name: str) -> list[int]:
    out = run("ip", "netns", "pids", name, check=False)
    return [int(p) for p in out.split() if p.isdigit()]


def kill_pids(pids: list[int], timeout: float = 5.0) -> None:
    """SIGTERM, then SIGKILL whatever is still alive after `timeout`."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + timeout
    alive = list(pids)
    while alive and time.monotonic() < end:
        alive = [p for p in alive if _alive(p)]
        if alive:
            time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie child of ours still answers kill(0); it is dead for our purposes
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def netns_delete(name: str) -> None:
    """Stop every process inside the namespace first: `ip netns del` only unmounts the name, a
    process left inside keeps the namespace (and its interfaces) alive."""
    if not netns_exists(name):
        return
    kill_pids(netns_pids(name))
    run("ip", "netns", "del", name, check=False)


def links(ns: str | None = None) -> list[str]:
    out = run("ip", "-o", "link", "show", ns=ns, check=False)
    names = []
    for line in out.splitlines():
        parts = line.split(":", 2)
        if len(parts) > 1:
            names.append(parts[1].strip().split("@")[0])
    return names


def link_delete(name: str, ns: str | None = None) -> None:
    run("ip", "link", "del", name, ns=ns, check=False)
