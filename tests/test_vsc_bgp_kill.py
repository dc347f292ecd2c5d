"""A VSC killed outright (SIGKILL) must not leave its ExaBGP behind: that orphan kept the BGP session
up, so the peer went on using the dead VSC's routes. ExaBGP dies with the VSC's process, the peer's
session goes down at once (ExaBGP's NOTIFICATION), and the next speaker to start removes the dead
one's temporary directory. Two VSC processes without a VSD, peered over loopback; no root needed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from vsc.bgp.exabgp_process import working_dir
from vsc.bgp.loopback import free_port as free_port_on
from vsc.process import BgpOptions, VscProcess
from vsplab.bench.measure import argv, children
from vsplab.lab.ports import free_port

SIDES = {"A": ("127.0.0.2", 65001), "B": ("127.0.0.3", 65002)}
NAME = "vl-bgp"  # what `vsc run` names its speaker's directory


def alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def wait_for(what: str, ok, timeout: float) -> float:
    t0 = time.monotonic()
    while not ok():
        if time.monotonic() - t0 > timeout:
            raise AssertionError(f"{what}: not within {timeout} s")
        time.sleep(0.05)
    return time.monotonic() - t0


def session_state(vsc: VscProcess) -> str:
    return vsc.status()["bgp"]["sessions"][0]["state"]


def test_killed_vsc_takes_its_exabgp_along_and_the_peer_withdraws(tmp_path):
    port = free_port_on(*(a for a, _ in SIDES.values()))
    vscs: dict[str, VscProcess] = {}
    strays: list[int] = []  # ExaBGP and relay of the killed VSC: killed here if the fix fails
    try:
        for name, (addr, asn) in SIDES.items():
            (other,) = [v for k, v in SIDES.items() if k != name]
            bgp = BgpOptions(asn, addr, f"{addr}:{port}", [f"{other[0]}:{port}:{other[1]}"], hold_time=30)
            vscs[name] = VscProcess(of_port=free_port(), agent_port=free_port(), status_port=free_port(),
                                    state_dir=tmp_path / f"state-{name}", log_file=tmp_path / f"vsc-{name}.log",
                                    bgp=bgp).start()
        wait_for("sessions up", lambda: all(session_state(v) == "up" for v in vscs.values()), 30)
        b = vscs["B"].proc.pid
        (exabgp,) = [p for p in children(b) if any(Path(a).name == "exabgp" for a in argv(p))]
        relays = [p for p in children(exabgp) if "vsc.bgp.relay" in argv(p)]
        strays += [exabgp, *relays]
        workdir = Path(argv(exabgp)[-1]).parent  # ... exabgp DIR/exabgp.conf
        assert workdir.name.startswith(f"{NAME}-pid{b}-") and (workdir / "relay.sock").exists()

        os.kill(b, signal.SIGKILL)
        vscs["B"].proc.wait()
        # The hold time is 30 s: a session that goes down within a few seconds was closed by B's ExaBGP.
        took = wait_for("the peer's session down", lambda: session_state(vscs["A"]) != "up", 5)
        print(f"VSC B killed -> A's session down after {took:.2f} s")
        wait_for("B's ExaBGP and relay gone", lambda: not any(alive(p) for p in strays), 5)
        assert workdir.exists()  # nobody was left to remove it ...

        vscs["B"].start()  # ... until the next speaker starts (after the status port answers: wait for it)
        wait_for("sessions up again", lambda: all(session_state(v) == "up" for v in vscs.values()), 30)
        assert not workdir.exists()
    finally:
        for v in vscs.values():
            v.stop()
        for pid in strays:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)


def test_working_dir_removes_only_dead_speakers_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr("tempfile.tempdir", None)
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(gone.stdout)
    stale = tmp_path / f"{NAME}-pid{dead}-abcd1234"
    live = tmp_path / f"{NAME}-pid{os.getpid()}-efgh5678"
    other = tmp_path / f"{NAME}-bench-pid{dead}-ijkl9012"  # another speaker name: not this one's to judge
    for d in (stale, live, other):
        d.mkdir()
        (d / "exabgp.conf").write_text("")
    new = working_dir(NAME)
    assert new.parent == tmp_path and new.name.startswith(f"{NAME}-pid{os.getpid()}-")
    assert not stale.exists() and live.exists() and other.exists()
