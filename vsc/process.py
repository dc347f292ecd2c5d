"""Run a VSC as a subprocess and ask it whether it has converged: the small API the lab front end,
the benchmarks and the tests use.

    vsc = VscProcess(vsd_url=..., state_dir=..., of_port=6653, agent_port=6634, status_port=6635)
    vsc.start(); vsc.wait_converged(timeout=60); vsc.restart(); vsc.stop()
    secret = vsc.enrol(datapath_id, secret_file=...)   # a VRS it will know (vsc/enrolment.py)

`status()` is GET /status (see vsc/status.py); converged means: the view is at the VSD's revision,
every VRS that reported on the agent channel is connected over OpenFlow, synced, and has no flow-mods
pending or unacknowledged; and with BGP (`bgp=BgpOptions(...)`), every configured session is up,
every route the peers sent is programmed and every local endpoint's route handed to the speaker.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class BgpOptions:
    """`vsc run`'s BGP options: EVPN federation with other VSCs (see vsc/bgp/federation.py)."""

    asn: int
    router_id: str
    listen: str | None = None  # "ADDR[:PORT]"; default the router id, port 179
    peers: list[str] = field(default_factory=list)  # "ADDR[:PORT]:ASN"
    hold_time: int | None = None
    md5: str | None = None

    def argv(self) -> list[str]:
        out = ["--bgp-asn", str(self.asn), "--router-id", self.router_id]
        if self.listen:
            out += ["--bgp-listen", self.listen]
        for p in self.peers:
            out += ["--bgp-peer", p]
        if self.hold_time is not None:
            out += ["--bgp-hold-time", str(self.hold_time)]
        if self.md5:
            out += ["--bgp-md5", self.md5]
        return out


class VscProcess:
    def __init__(self, vsd_url: str | None = None, user: str = "csproot", password: str = "csproot",
                 org: str = "csp", state_dir: str | Path | None = None, listen: str = "127.0.0.1",
                 of_port: int = 6653, agent_port: int = 6634, status_port: int = 6635,
                 log_file: str | Path | None = None, log_level: str = "INFO",
                 view_file: str | Path | None = None, bgp: BgpOptions | None = None,
                 require_enrolment: bool = False, echo_interval: float | None = None,
                 echo_misses: int | None = None) -> None:
        self.args = ["run", "--listen", listen, "--of-port", str(of_port), "--agent-port", str(agent_port),
                     "--status-port", str(status_port), "--user", user, "--password", password, "--org", org,
                     "--log-level", log_level]
        self.state_dir = Path(state_dir) if state_dir else None
        if require_enrolment:
            self.args.append("--require-enrolment")
        if echo_interval is not None:
            self.args += ["--echo-interval", str(echo_interval)]
        if echo_misses is not None:
            self.args += ["--echo-misses", str(echo_misses)]
        if vsd_url:
            self.args += ["--vsd", vsd_url]
        if state_dir:
            self.args += ["--state-dir", str(state_dir)]
        if view_file:
            self.args += ["--view", str(view_file)]
        if bgp is not None:
            self.args += bgp.argv()
        # Listening on every address: ask over loopback.
        self.listen, self.status_port = ("127.0.0.1" if listen == "0.0.0.0" else listen), status_port
        self.log_file = Path(log_file) if log_file else None
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 15.0) -> VscProcess:
        out = open(self.log_file, "ab") if self.log_file else subprocess.DEVNULL
        self.proc = subprocess.Popen([sys.executable, "-m", "vsc.cli", *self.args], stdout=out,
                                     stderr=subprocess.STDOUT, cwd=str(Path(__file__).resolve().parent.parent))
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                raise RuntimeError(f"vsc exited with {self.proc.returncode} (log: {self.log_file})")
            try:
                self.status()
                return self
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise TimeoutError("vsc did not answer on its status port")

    def status(self) -> dict:
        with urllib.request.urlopen(f"http://{self.listen}:{self.status_port}/status", timeout=5) as r:
            return json.loads(r.read())

    def wait_converged(self, timeout: float = 60.0, min_revision: int = 0, datapaths: int = 0,
                       endpoints: int = 0, bgp_received: int = 0) -> dict:
        """Until converged with at least `datapaths` synced VRSs, `endpoints` placed endpoints and
        `bgp_received` routes from BGP peers (the caller knows what it started; an idle VSC with
        nothing connected is trivially converged)."""
        end = time.monotonic() + timeout
        st: dict = {}
        while time.monotonic() < end:
            try:
                st = self.status()
                if (st["converged"] and st["revision"] >= min_revision and st["endpoints"] >= endpoints
                        and sum(d["synced"] for d in st["datapaths"].values()) >= datapaths
                        and (st.get("bgp") or {}).get("received", 0) >= bgp_received):
                    return st
            except OSError:
                pass
            time.sleep(0.05)
        raise TimeoutError(f"VSC not converged after {timeout}s: {json.dumps(st)[:2000]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def enrol(self, datapath_id: int, secret_file: str | Path | None = None, vtep_ip: str | None = None) -> bytes:
        """Enrol a VRS in this VSC's table (its state dir); the running VSC picks it up. Writes the
        secret to `secret_file` too when given; returns it."""
        from vsc.enrolment import Enrolment, write_secret

        if self.state_dir is None:
            raise ValueError("a VSC without a state dir keeps no enrolment table")
        secret = Enrolment(self.state_dir).issue(datapath_id, vtep_ip)
        if secret_file is not None:
            write_secret(secret_file, secret)
        return secret

    def restart(self) -> VscProcess:
        self.stop()
        return self.start()

    def __enter__(self) -> VscProcess:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
