"""BGP benchmark, VSC to VSC: N endpoint routes from one VSC to another over MP-BGP EVPN, until every
simulated VRS of the receiving VSC holds them (`benchmarks/bgp.py` runs it; this is its second half).

Setup (not timed): one VSD holding one domain (NFD8's: tiers web/app/db, 13 rules) with N vports on
the sender's hosts (40 x 500 for N = 20,000) and one vport on each of the receiver's few hosts, so
every receiver host needs every sender endpoint; VSC A (127.0.0.2, AS 65001) and VSC B (127.0.0.3,
AS 65002) each with its ExaBGP, peered over loopback; all simulated VRSs in this process, each
attached to its VSC over OpenFlow and the agent channel as the labs do. Both VSCs converge (the first
transfer happens here, untimed: its start is blurred by the hosts reporting).

Measured: the sender's ExaBGP is stopped (SIGSTOP) until the receiver's hold timer (9 s) has expired
and the receiver's speaker has withdrawn the sender's routes from every receiver host; then it goes
on, and the session comes up again. The clock starts (T0) at that "up", as the earlier of the two
VSCs heard it from its speaker (`since` in their /status): the sender has all N endpoints local and in
its speaker's table, the receiver's hosts are synced and hold none of them. Then:
- received: the receiver's speaker holds all N routes (its /status, polled every 20 ms);
- programmed: every receiver host holds all N table-20 flows (the simulated switches' own tables,
  polled every 20 ms on their event loop).
Afterwards every route is checked on every receiver host (IP, cookie of its route, actions equal to
the flow the sender compiled for that endpoint itself: same VTEP, VNI and tag bits; VTEP and VNI also
against the placement and the VSD), the counts exactly, and two packets traced across.
"""

from __future__ import annotations

import os
import signal
import time
from math import ceil
from pathlib import Path

from vrs.sim.host import Container
from vrs.sim.packet import Packet
from vrs.sim.runtime import SimRuntime
from vsc.bgp.loopback import cpu_seconds
from vsc.bgp.loopback import free_port as free_port_on
from vsc.bgp.routes import key_text, route_distinguisher
from vsc.pipeline import REG_KEY, REG_PEER_TAGS, Kind, Table, cookie
from vsc.process import BgpOptions, VscProcess
from vsplab.bench.measure import argv, children
from vsplab.lab.ports import free_port
from vsplab.workload.tree import Placement, Tree, nfd8, vtep_of

ROUTERS = {"A": ("127.0.0.2", 65001), "B": ("127.0.0.3", 65002)}
PER_HOST = 500  # NFD8's containers per host
POLL = 0.02  # s
HOLD_TIME = 9  # s: `vsc run`'s default; the receiver notices the silenced sender after this
REMOTE_PRIORITY = 100  # of a remote endpoint's table-20 flow (vsc.compiler.remote_flow)


def workload(routes: int, receiver_hosts: int) -> tuple[Tree, Placement, list[int], list[int]]:
    """NFD8 with `routes` containers on the sender's hosts (dpids 1..), plus one container on each of
    the receiver's hosts (the dpids after), in the same domain and groups, at addresses NFD8 leaves free."""
    hosts = max(2, ceil(routes / PER_HOST))
    if routes % hosts:
        raise ValueError(f"--routes {routes}: must split evenly over {hosts} hosts of at most {PER_HOST}")
    tree, placement = nfd8(hosts, routes // hosts)
    (dom,) = [o["entity"]["ID"] for o in tree.objects if o["entityType"] == "domain"]
    subnets = {o["entity"]["name"]: o["entity"]["ID"] for o in tree.objects if o["entityType"] == "subnet"}
    groups = {o["entity"]["name"]: o for o in tree.objects if o["entityType"] == "policygroup"}
    receivers = []
    for k in range(receiver_hosts):
        dpid = hosts + 1 + k
        tier = ("web", "app", "db")[k % 3]
        mac, ip = f"02:00:00:01:00:{k + 1:02x}", f"10.{k % 3 + 1}.250.{k + 1}"
        vp = tree.vport(subnets[tier], dom, f"r{k}", mac, ip)
        for g in (tier, "all"):
            groups[g]["assoc"]["vport"].append(vp)
        placement.host(dpid, vtep_of(dpid))
        placement.port(dpid, 10, vp, mac, ip)
        receivers.append(dpid)
    return tree, placement, list(range(1, hosts + 1)), receivers


class Federation:
    """VSCs A and B peered over ExaBGP, following one VSD, and their simulated hosts in this process."""

    def __init__(self, vsd, placement: Placement, names: dict[str, str], homes: dict[str, list[int]],
                 tmp: Path) -> None:
        self.vsd, self.placement, self.names, self.homes, self.tmp = vsd, placement, names, homes, tmp
        self.vscs: dict[str, VscProcess] = {}
        self.rt = SimRuntime(controller=None, agent=None)

    def __enter__(self) -> Federation:
        try:
            self._start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def _start(self) -> None:
        port = free_port_on(*(a for a, _ in ROUTERS.values()))
        ports = {}
        for side, (addr, asn) in ROUTERS.items():
            (other,) = [v for k, v in ROUTERS.items() if k != side]
            bgp = BgpOptions(asn, addr, f"{addr}:{port}", [f"{other[0]}:{port}:{other[1]}"], hold_time=HOLD_TIME)
            ports[side] = of, agent = free_port(), free_port()
            self.vscs[side] = VscProcess(
                vsd_url=self.vsd.url, user=self.vsd.user, password=self.vsd.password, of_port=of,
                agent_port=agent, status_port=free_port(), state_dir=self.tmp / f"state-{side}",
                log_file=self.tmp / f"vsc-{side}.log", bgp=bgp).start(timeout=60)
        self.rt.run_in_thread()
        specs = [(self.host_name(d), d, self.placement.hosts[d][0]["vtep_ip"], self.containers(d),
                  ("127.0.0.1", ports[side][0]), ("127.0.0.1", ports[side][1]))
                 for side, dpids in self.homes.items() for d in dpids]
        self.rt.call(lambda: [self.rt.add_host_now(*s) for s in specs])

    def __exit__(self, *exc) -> None:
        self.rt.stop()
        for v in self.vscs.values():
            v.stop()

    def host_name(self, dpid: int) -> str:
        return self.placement.hosts[dpid][0]["name"]

    def containers(self, dpid: int) -> list[Container]:
        return [Container(f"vl-{self.names[m['vport_id']]}", m["mac"], m["ip"], m["vport_id"], m["ofport"])
                for m in self.placement.hosts[dpid] if m["op"] == "port-up"]

    def exabgp_pid(self, side: str) -> int:
        vsc = self.vscs[side].proc.pid
        pids = [p for p in children(vsc) if any(Path(a).name == "exabgp" for a in argv(p))]
        if len(pids) != 1:
            raise RuntimeError(f"VSC {side} (pid {vsc}) has ExaBGP children {pids}, not one")
        return pids[0]

    def endpoint_rules(self, dpids: list[int]) -> dict[int, dict[int, tuple[int, tuple]]]:
        """dpid -> IP -> (cookie, actions) of the remote-endpoint flows its simulated switch holds."""
        def grab():
            out = {}
            for d in dpids:
                table = self.rt.hosts[self.host_name(d)].switch.tables[Table.ENDPOINT]
                out[d] = {dict(zip(r.sub.names, r.values, strict=True))[REG_KEY]: (r.cookie, r.instr[0])
                          for r in (table.rules() if table else ()) if r.priority == REMOTE_PRIORITY}
            return out
        return self.rt.call(grab)

    def table_counts(self, dpids: list[int]) -> tuple[float, list[int]]:
        """(when, on the switches' own loop; flows in each one's table 20)."""
        def count():
            tables = [self.rt.hosts[self.host_name(d)].switch.tables[Table.ENDPOINT] for d in dpids]
            return time.time(), [t.count if t else 0 for t in tables]
        return self.rt.call(count)


def _session(vsc: VscProcess) -> dict:
    (s,) = vsc.status()["bgp"]["sessions"]
    return s


def transfer(vsd, tree: Tree, placement: Placement, vni: int, sender_dpids: list[int], receiver_dpids: list[int],
             sender: str, receiver: str, tmp: Path, timeout: float) -> dict:
    """One direction: setup, reset, timed transfer, verification (see the module's docstring)."""
    names = {o["entity"]["ID"]: o["entity"]["name"] for o in tree.objects if o["entityType"] == "vport"}
    n = sum(m["op"] == "port-up" for d in sender_dpids for m in placement.hosts[d])
    expected = _expected(placement, sender_dpids, ROUTERS[sender][0], vni)
    t_setup = time.monotonic()
    with Federation(vsd, placement, names, {sender: sender_dpids, receiver: receiver_dpids}, tmp) as fed:
        tx, rx = fed.vscs[sender], fed.vscs[receiver]
        tx.wait_converged(timeout, datapaths=len(sender_dpids), endpoints=n, bgp_received=len(receiver_dpids))
        rx.wait_converged(timeout, datapaths=len(receiver_dpids), endpoints=len(receiver_dpids), bgp_received=n)
        setup_s = time.monotonic() - t_setup
        print(f"  setup: VSCs, {len(sender_dpids) + len(receiver_dpids)} hosts, first transfer: converged "
              f"after {setup_s:.1f} s (untimed)", flush=True)
        rules = fed.endpoint_rules(receiver_dpids)
        _, counts = fed.table_counts(receiver_dpids)
        # Each host's table 20 without the sender's routes: what it holds while the session is down.
        empty = [c - sum(expected.get(ip, (None,))[0] == ck for ip, (ck, _) in rules[d].items())
                 for d, c in zip(receiver_dpids, counts, strict=True)]
        full = [e + n for e in empty]
        t_stop, t_empty, t_cont = session_down(fed, sender, receiver_dpids, empty, HOLD_TIME + 60)
        up, t_received, t_programmed, cpu = timed(fed, sender, receiver, receiver_dpids, n, full, t_cont,
                                                  max(60.0, n / 200))  # ten times the target's pace
        t_up = min(up.values())
        statuses = {sender: tx.status(), receiver: rx.status()}
        checks = verify(fed, expected, sender_dpids, receiver_dpids, vni)
        checks.update(traces(fed, tree))
    rx_bgp = statuses[receiver]["bgp"]
    checks[f"{receiver}'s VSC: {n} received and imported, no errors"] = (
        rx_bgp["received"] == rx_bgp["imported"] == n and not statuses[receiver]["input_errors"])
    received_s, programmed_s = t_received - t_up, t_programmed - t_up
    return {"routes": n, "sender_hosts": len(sender_dpids), "receiver_hosts": len(receiver_dpids),
            "setup_s": round(setup_s, 1), "session_up_s": {k: round(v - t_up, 3) for k, v in up.items()},
            "sender_exabgp_stopped_before_t0_s": round(t_up - t_stop, 2),
            "hosts_emptied_before_t0_s": round(t_up - t_empty, 2),
            "sender_exabgp_continued_before_t0_s": round(t_up - t_cont, 2),
            "received_s": round(received_s, 3), "received_routes_per_s": round(n / received_s),
            "programmed_s": round(programmed_s, 3), "programmed_routes_per_s": round(n / programmed_s),
            "cpu_s": cpu, "checks": checks, "verified": all(checks.values())}


def session_down(fed: Federation, sender: str, receiver_dpids: list[int], empty: list[int],
                 timeout: float) -> tuple[float, float, float]:
    """Stop the sender's ExaBGP (SIGSTOP) until the receiver's hold timer has expired and its hosts
    hold none of the sender's routes, then let it go on. Returns (stopped, emptied, continued)."""
    exabgp = fed.exabgp_pid(sender)
    t_stop = time.time()
    os.kill(exabgp, signal.SIGSTOP)
    try:
        deadline = time.monotonic() + timeout
        while (now := fed.table_counts(receiver_dpids))[1] != empty:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the receiver's hosts still hold {now[1]} table-20 flows {timeout:.0f} s after "
                                   f"the sender's ExaBGP stopped (without the sender's routes: {empty})")
            time.sleep(POLL)
    finally:
        t_cont = time.time()
        os.kill(exabgp, signal.SIGCONT)
    return t_stop, now[0], t_cont


def timed(fed: Federation, sender: str, receiver: str, receiver_dpids: list[int], n: int, full: list[int],
          t_cont: float, limit: float) -> tuple[dict[str, float], float, float, dict[str, float]]:
    """Poll until the session is up again, the receiver's speaker holds all `n` routes and every
    receiver host all its table-20 flows (`full`). Returns (side -> when its speaker saw the session up,
    received, programmed, CPU seconds each process spent from the first "up" seen to the end)."""
    tx, rx = fed.vscs[sender], fed.vscs[receiver]
    t_received = t_programmed = None
    up: dict[str, float] = {}
    cpu0: dict[str, float] = {}
    pids: dict[str, int] = {}
    counts = None
    deadline = time.monotonic() + limit
    while t_programmed is None or t_received is None:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{sender} -> {receiver}: not done {limit:.0f} s after the sender's ExaBGP went on "
                               f"(session up {up}, received {t_received}, programmed {t_programmed}; table-20 "
                               f"flows {counts}, full is {full})")
        when, counts = fed.table_counts(receiver_dpids)
        if t_programmed is None and counts == full:
            t_programmed = when
        s = _session(rx)
        for side, vsc in ((receiver, None), (sender, tx)):
            session = s if vsc is None else _session(vsc)
            if side not in up and session["state"] == "up" and session["since"] > t_cont:
                up[side] = session["since"]
        if up and not cpu0:  # the routes are on their way: who works how much from here
            pids = {"sender_exabgp": fed.exabgp_pid(sender), "receiver_exabgp": fed.exabgp_pid(receiver),
                    "sender_vsc": tx.proc.pid, "receiver_vsc": rx.proc.pid}
            cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
            cpu0["simulated_vrss"] = time.process_time()
        if receiver in up and t_received is None and s["routes_received"] == n:
            t_received = time.time()
        time.sleep(POLL)
    cpu = {k: round(cpu_seconds(p) - cpu0[k], 2) for k, p in pids.items()}
    cpu["simulated_vrss"] = round(time.process_time() - cpu0["simulated_vrss"], 2)
    return up, t_received, t_programmed, cpu


def _expected(placement: Placement, dpids: list[int], router_id: str, vni: int) -> dict[int, tuple[int, int]]:
    """IP -> (cookie of the sender's route for that endpoint, VTEP of its host), as integers."""
    if vni > 0xFFFF:
        raise ValueError(f"VNI {vni}: the RD would carry the VSC's domain index, which only the VSC knows")
    out = {}
    for d in dpids:
        msgs = placement.hosts[d]
        vtep = _ip_int(msgs[0]["vtep_ip"])
        for m in msgs:
            if m["op"] == "port-up":
                key = (route_distinguisher(router_id, vni, 1), m["mac"], m["ip"])
                out[_ip_int(m["ip"])] = (cookie(Kind.REMOTE_ENDPOINT, key_text(key)), vtep)
    return out


def _ip_int(text: str) -> int:
    return int.from_bytes(bytes(int(x) for x in text.split(".")), "big")


def verify(fed: Federation, expected: dict[int, tuple[int, int]], sender_dpids: list[int],
           receiver_dpids: list[int], vni: int) -> dict[str, bool]:
    """Every route on every receiver host, against the flows the sender compiled for its own hosts."""
    n = len(expected)
    first, second = sender_dpids[:2]
    ref = fed.endpoint_rules([first, second])
    on_first = {_ip_int(m["ip"]) for m in fed.placement.hosts[first] if m["op"] == "port-up"}
    reference = {ip: ref[second if ip in on_first else first][ip][1] for ip in expected}
    got = fed.endpoint_rules(receiver_dpids)
    missing = wrong = fields_bad = 0
    for d in receiver_dpids:
        for ip, (ck, vtep) in expected.items():
            have = got[d].get(ip)
            if have is None or have[0] != ck:
                missing += 1
                continue
            acts = have[1]
            if acts != reference[ip]:
                wrong += 1
            f = {a.name: a.value for a in acts if hasattr(a, "name")}
            if f.get("tun_id") != vni or f.get("tun_ipv4_dst") != vtep or not f.get(REG_PEER_TAGS[0]):
                fields_bad += 1
    counts = [len(got[d]) for d in receiver_dpids]
    if missing or wrong or fields_bad:
        print(f"  VERIFY: {missing} missing, {wrong} not as the sender compiled them, {fields_bad} with a wrong "
              f"VTEP/VNI/tags (over {len(receiver_dpids)} hosts x {n} routes)", flush=True)
    return {f"every receiver host holds all {n} routes, each with its route's cookie": missing == 0,
            "each equals the sender's own flow for that endpoint (VTEP, VNI, tag bits)": wrong == 0,
            "VTEP as placed, VNI of the domain, tags set": fields_bad == 0,
            "remote endpoints exactly the routes and the receiver's own other hosts' endpoints":
                counts == [n + len(receiver_dpids) - 1] * len(receiver_dpids)}


def traces(fed: Federation, tree: Tree) -> dict[str, bool]:
    """NFD8's policy across the federation: the receiver's web container (r0) may reach an app
    container of the sender on tcp/8080 but not a db one on tcp/5432 (c1 app, c2 db: the first host)."""
    ips = {o["entity"]["name"]: o["entity"]["IPAddress"] for o in tree.objects if o["entityType"] == "vminterface"}
    out = {}
    for dst, port, allow in (("c1", 8080, True), ("c2", 5432, False)):
        r = fed.rt.trace(Packet(source="vl-r0", dst_ip=ips[dst], dst_port=port, proto="tcp"))
        out[f"trace r0 -> {dst} tcp/{port} {'delivered' if allow else 'dropped'}"] = (
            bool(r.delivered_to(f"vl-{dst}")) == allow)
    return out


def run(routes: int, receiver_hosts: int, both_ways: bool, timeout: float, work_dir: Path) -> dict:
    """The VSD, then A -> B (A holds the `routes` endpoints) and, if `both_ways`, B -> A (B holds them)
    with fresh VSCs and hosts; prints as it goes."""
    from vsd.client import VsdClient
    from vsd.server import EmbeddedVsd
    from vsplab.workload.vsd_push import push, relabel

    tree, placement, senders, receivers = workload(routes, receiver_hosts)
    vsd = EmbeddedVsd(log_path=str(work_dir / "vsd.log")).start()
    try:
        client = VsdClient(vsd.api, vsd.user, vsd.password)
        t0 = time.monotonic()
        ids = push(client, tree)
        push_s = time.monotonic() - t0
        relabel(tree, placement, ids)
        (dom,) = [o["entity"]["ID"] for o in tree.objects if o["entityType"] == "domain"]
        vni = client.get(f"domains/{dom}")["serviceID"]
        print(f"VSD: {len(tree.objects):,} objects pushed in {push_s:.1f} s (one domain, VNI {vni})", flush=True)
        out: dict = {"routes": routes, "vsd_push_s": round(push_s, 1)}
        for sender, receiver in (("A", "B"), ("B", "A"))[:2 if both_ways else 1]:
            print(f"{sender} -> {receiver}: {routes:,} routes from {len(senders)} hosts of VSC {sender} to "
                  f"{len(receivers)} hosts of VSC {receiver}", flush=True)
            side = work_dir / f"{sender}-to-{receiver}"
            side.mkdir()
            r = transfer(vsd, tree, placement, vni, senders, receivers, sender, receiver, side, timeout)
            out[f"{sender.lower()}_to_{receiver.lower()}"] = r
            print(f"  T0 = the session up again: {sender}'s ExaBGP stopped {r['sender_exabgp_stopped_before_t0_s']:.1f} s "
                  f"before, {receiver}'s hosts emptied of its routes {r['hosts_emptied_before_t0_s']:.1f} s before, "
                  f"{sender}'s ExaBGP continued {r['sender_exabgp_continued_before_t0_s']:.1f} s before\n"
                  f"  received by {receiver}'s speaker: {r['received_s']:6.2f} s  "
                  f"{r['received_routes_per_s']:7,} routes/s\n"
                  f"  programmed on all {len(receivers)} hosts: {r['programmed_s']:6.2f} s  "
                  f"{r['programmed_routes_per_s']:7,} routes/s\n"
                  f"  CPU s from T0: " + ", ".join(f"{k} {v}" for k, v in r["cpu_s"].items()), flush=True)
            for what, ok in r["checks"].items():
                print(f"  {'ok  ' if ok else 'FAIL'} {what}", flush=True)
    finally:
        vsd.close()
    return out
