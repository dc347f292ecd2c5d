"""Route reflectors a killed lab left running (`vsplab clean`): a bgpd whose configuration lives in a
`vl-rr-NAME` directory (vsplab/bgp/frr.py) and whose lab, named in that directory's owner file, is
gone. Never a bgpd by name alone: other tools and other labs run theirs too."""

from __future__ import annotations

import json
import os
import shutil
import signal
import time
from pathlib import Path

from vsplab.bgp.frr import DIR_PREFIX, OWNER_FILE, process_start


class LeftoversError(RuntimeError):
    pass


def _argv(pid: int) -> list[str]:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return []


def _reflector_dir(argv: list[str]) -> Path | None:
    """The vl-rr- directory of a lab's bgpd, from its command line; None for any other process."""
    if not argv or not argv[0].endswith("/bgpd") or "-f" not in argv[:-1]:
        return None
    directory = Path(argv[argv.index("-f") + 1]).parent
    return directory if directory.name.startswith(DIR_PREFIX) else None


def _owner_alive(directory: Path) -> bool:
    try:
        owner = json.loads((directory / OWNER_FILE).read_text())
    except (OSError, ValueError):
        return False  # no owner on record: nobody will stop it
    return owner.get("started") is not None and process_start(owner["pid"]) == owner["started"]


def orphans() -> list[tuple[int, Path]]:
    """(pid, directory) of every lab bgpd whose lab is gone."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        directory = _reflector_dir(_argv(int(entry.name)))
        if directory is not None and not _owner_alive(directory):
            found.append((int(entry.name), directory))
    return found


def find() -> list[str]:
    return [f"route reflector bgpd {pid} ({directory})" for pid, directory in orphans()]


def cleanup(force: bool = False) -> list[str]:
    """Stop every orphaned lab bgpd and remove its directory. Reflectors of a running lab are that
    lab's to stop (Ctrl-C), with or without `force`."""
    found = orphans()
    for pid, _ in found:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    end = time.monotonic() + 5  # bgpd takes a second or two to say goodbye to its peers
    alive = found
    while alive and time.monotonic() < end:
        time.sleep(0.1)
        alive = [(pid, d) for pid, d in alive if _reflector_dir(_argv(pid)) == d]
    for pid, _ in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    removed = []
    for pid, directory in found:
        removed.append(f"route reflector bgpd {pid}")
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            removed.append(f"directory {directory}")
    return removed
