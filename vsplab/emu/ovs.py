"""One Open vSwitch (ovsdb-server + netdev ovs-vswitchd) inside a network namespace, with its own
run, log and database directory: the switch of one emulated host.

Measured on these machines (../shared/notes/userspace-ovs.md): the userspace datapath creates a tap
named `ovs-netdev`, so each instance needs its own namespace; and OVS_RUNDIR must be set in the
environment, else the per-bridge management sockets land in /var/run/openvswitch and collide."""

from __future__ import annotations

import os
import time
from pathlib import Path

from vsplab.emu.netns import CommandError, kill_pids, run

SCHEMA = Path("/usr/share/openvswitch/vswitch.ovsschema")


class OvsInstance:
    def __init__(self, ns: str, directory: Path) -> None:
        self.ns = ns
        self.dir = Path(directory)
        self.env = {**os.environ, "OVS_RUNDIR": str(self.dir), "OVS_LOGDIR": str(self.dir),
                    "OVS_DBDIR": str(self.dir)}

    @property
    def db_sock(self) -> str:
        return str(self.dir / "db.sock")

    @property
    def db_remote(self) -> str:
        return f"unix:{self.db_sock}"

    def start(self, timeout: float = 15.0) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        db = self.dir / "conf.db"
        if not db.exists():
            run("ovsdb-tool", "create", str(db), str(SCHEMA))
        self.start_ovsdb()
        self.vsctl("--no-wait", "init")
        self.start_vswitchd(timeout)

    def start_ovsdb(self) -> None:
        run("ovsdb-server", str(self.dir / "conf.db"), f"--remote=p{self.db_remote}", "--pidfile", "--detach",
            f"--log-file={self.dir / 'ovsdb-server.log'}", ns=self.ns, env=self.env)

    def restart_ovsdb(self) -> None:
        """The database server goes away and comes back with the same file: clients must reconnect."""
        pid = self.pid("ovsdb-server")
        if pid:
            kill_pids([pid])
        self.start_ovsdb()

    def restart_vswitchd(self, timeout: float = 15.0) -> None:
        """What an OVS upgrade or crash does: the datapath and every flow go, the database stays."""
        pid = self.pid("ovs-vswitchd")
        if pid:
            kill_pids([pid])
        self.start_vswitchd(timeout)

    def start_vswitchd(self, timeout: float = 15.0) -> None:
        run("ovs-vswitchd", self.db_remote, "--pidfile", "--detach", f"--log-file={self.dir / 'ovs-vswitchd.log'}",
            ns=self.ns, env=self.env)
        # vswitchd answers appctl only once its main loop runs; wait for that before anyone configures it
        end = time.monotonic() + timeout
        while True:
            try:
                self.appctl("version")
                return
            except CommandError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)

    def vsctl(self, *args: str) -> str:
        return run("ovs-vsctl", f"--db={self.db_remote}", "--timeout=10", *args, ns=self.ns, env=self.env)

    def ofctl(self, *args: str) -> str:
        return run("ovs-ofctl", "-O", "OpenFlow13", *args, ns=self.ns, env=self.env)

    def appctl(self, *args: str) -> str:
        # with OVS_RUNDIR set, "-t ovs-vswitchd" finds this instance through its pidfile
        return run("ovs-appctl", "-t", "ovs-vswitchd", *args, ns=self.ns, env=self.env)

    def pid(self, daemon: str) -> int | None:
        try:
            return int((self.dir / f"{daemon}.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def pids(self) -> list[int]:
        return [p for p in (self.pid("ovs-vswitchd"), self.pid("ovsdb-server")) if p]

    def stop(self) -> None:
        # vswitchd first, so it does not log a storm of reconnects to a vanished database
        for pid in self.pids():
            kill_pids([pid])

    def rss_kb(self) -> dict[str, int]:
        out = {}
        for name in ("ovs-vswitchd", "ovsdb-server"):
            try:
                for line in Path(f"/proc/{self.pid(name)}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        out[name] = int(line.split()[1])
            except OSError:
                pass
        return out
