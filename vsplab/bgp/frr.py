"""A route reflector for the lab: FRR's bgpd alone (no zebra: it reflects routes, it forwards nothing),
on its own loopback address and the lab's BGP port, in a directory of the lab's own.

    rr = RouteReflector(plan.speakers["rr1"], plan.peers_of("rr1"), plan, workdir / "vl-rr-rr1")
    rr.start(); rr.sessions(); rr.vtysh("show bgp l2vpn evpn route"); rr.stop()

Measured facts behind the configuration (../shared/notes/exabgp-evpn.md): bgpd refuses to run as root
(`-u frr`, so its directory belongs to frr); ExaBGP's EVPN routes ride IPv4 unicast carrier prefixes,
so that family is negotiated too (ExaBGP drops an UPDATE of a family the session lacks) but nothing
of it is passed on; without zebra no next hop is unresolvable, so reflected routes stay valid.
Peers in the reflector's AS are its clients; peers in other ASes get what it learns over eBGP.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from vsplab.bgp.plan import BgpPlan, BgpSpeaker

BGPD = "/usr/lib/frr/bgpd"
VTYSH = "vtysh"
DIR_PREFIX = "vl-rr-"  # every reflector's directory, and so its bgpd's command line: how leftovers are found
OWNER_FILE = "owner.json"  # the lab process that started it: a reflector whose owner is gone is left over
NO_CARRIERS = "vl-no-carriers"  # route map: ExaBGP's IPv4 carrier prefixes go no further than the reflector
ESTABLISHED = "Established"


class FrrError(RuntimeError):
    pass


def preflight() -> None:
    """Raise FrrError saying what is missing to run a route reflector here."""
    if os.geteuid() != 0:
        raise FrrError("route reflectors run FRR's bgpd, which needs root (it switches to the frr user): run "
                       "as root, or peer the VSCs with each other instead of through a route reflector")
    missing = [t for t in (BGPD, VTYSH) if shutil.which(t) is None]
    if missing:
        raise FrrError(f"missing {', '.join(missing)}: install FRR (apt-get install frr; scripts/system-deps)")


def bgpd_config(me: BgpSpeaker, peers: list[BgpSpeaker], port: int, hold_time: int, md5: str | None) -> str:
    """bgpd.conf of a route reflector: one neighbor per peer, EVPN reflected to clients of its AS."""
    keepalive = hold_time // 3
    lines = ["frr defaults traditional", f"hostname {DIR_PREFIX}{me.name}", "log stdout informational", "!",
             f"route-map {NO_CARRIERS} deny 10", "!",
             f"router bgp {me.asn}", f" bgp router-id {me.router_id}",
             " no bgp ebgp-requires-policy", " no bgp default ipv4-unicast"]
    for p in peers:
        lines += [f" neighbor {p.address} remote-as {p.asn}", f" neighbor {p.address} port {port}",
                  f" neighbor {p.address} update-source {me.address}",
                  # a VSC's routes name its VRSs' VTEPs as next hops, never the VSC's own (peering)
                  # address: over eBGP FRR would otherwise call them unreachable ("Must be Connected")
                  f" neighbor {p.address} disable-connected-check",
                  f" neighbor {p.address} timers {keepalive} {hold_time}",
                  # the lab starts everything at once: retry soon rather than after FRR's 120 s
                  f" neighbor {p.address} timers connect 2",
                  f" neighbor {p.address} advertisement-interval 0"]
        if md5:
            lines.append(f" neighbor {p.address} password {md5}")
    lines.append(" address-family ipv4 unicast")
    for p in peers:
        lines += [f"  neighbor {p.address} activate", f"  neighbor {p.address} route-map {NO_CARRIERS} out"]
    lines += [" exit-address-family", " address-family l2vpn evpn"]
    for p in peers:
        lines.append(f"  neighbor {p.address} activate")
        if p.asn == me.asn:
            lines.append(f"  neighbor {p.address} route-reflector-client")
    lines += [" exit-address-family", "!"]
    return "\n".join(lines) + "\n"


@dataclass
class ReflectorSession:
    peer: str  # address
    state: str  # FRR's word: Established, Active, Connect, ...
    routes_received: int
    routes_advertised: int


class RouteReflector:
    def __init__(self, me: BgpSpeaker, plan: BgpPlan, directory: Path):
        if not directory.name.startswith(DIR_PREFIX):
            raise ValueError(f"a reflector's directory is named {DIR_PREFIX}NAME, not {directory.name}")
        self.me, self.plan, self.dir = me, plan, directory
        self.peers = plan.peers_of(me.name)
        self.proc: subprocess.Popen | None = None

    @property
    def log_file(self) -> Path:
        return self.dir / "bgpd.log"

    def start(self, timeout: float = 15.0) -> RouteReflector:
        """Write the configuration, start bgpd, return once it answers vtysh."""
        preflight()
        self.dir.mkdir(parents=True, exist_ok=True)
        closed = next((d for d in self.dir.parents if not d.stat().st_mode & 0o001), None)
        if closed is not None:
            raise FrrError(f"bgpd runs as the frr user and cannot reach {self.dir}: {closed} is closed to other "
                           "users; put the lab elsewhere (VSPLAB_LABS_DIR)")
        (self.dir / "bgpd.conf").write_text(bgpd_config(self.me, self.peers, self.plan.port, self.plan.hold_time,
                                                        self.plan.md5))
        (self.dir / OWNER_FILE).write_text(json.dumps({"pid": os.getpid(), "started": process_start(os.getpid())}))
        shutil.chown(self.dir, "frr", "frr")
        for f in self.dir.iterdir():
            shutil.chown(f, "frr", "frr")
        argv = [BGPD, "-Z", "-u", "frr", "-g", "frr", "-f", str(self.dir / "bgpd.conf"),
                "-i", str(self.dir / "bgpd.pid"), "--vty_socket", str(self.dir), "-z", str(self.dir / "zserv.api"),
                "-l", self.me.address, "-p", str(self.plan.port), "-P", "0"]  # -P 0: no vty TCP port to clash
        with open(self.log_file, "ab") as log:
            # its own session: a Ctrl-C reaches the lab, whose teardown stops bgpd in its turn
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         start_new_session=True)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise FrrError(f"bgpd of {self.me.name} exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                self.vtysh("show bgp summary json")
                return self
            except FrrError:
                time.sleep(0.1)
        self.stop()
        raise FrrError(f"bgpd of {self.me.name} did not answer vtysh within {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, size: int = 2000) -> str:
        try:
            return self.log_file.read_text(errors="replace")[-size:]
        except OSError:
            return ""

    def vtysh(self, command: str) -> str:
        try:
            out = subprocess.run([VTYSH, "--vty_socket", str(self.dir), "-c", command], capture_output=True,
                                 text=True, timeout=10)
        except subprocess.TimeoutExpired:
            raise FrrError(f"vtysh {command!r} to {self.me.name} timed out") from None
        if out.returncode != 0:
            raise FrrError(f"vtysh {command!r} to {self.me.name}: {(out.stderr or out.stdout).strip()}")
        return out.stdout

    def sessions(self) -> list[ReflectorSession]:
        """The EVPN sessions as bgpd reports them (`show bgp l2vpn evpn summary json`)."""
        summary = json.loads(self.vtysh("show bgp l2vpn evpn summary json") or "{}")
        return [ReflectorSession(address, p.get("state", "?"), p.get("pfxRcd", 0), p.get("pfxSnt", 0))
                for address, p in summary.get("peers", {}).items()]

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def process_start(pid: int) -> int | None:
    """A process's start time in clock ticks after boot: with its pid, it names one process for good
    (field 22 of /proc/PID/stat, counted after the command name, which may hold spaces)."""
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[19])
    except (OSError, IndexError, ValueError):
        return None
