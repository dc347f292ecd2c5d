"""How fast a removed ACL entry really stops traffic: new TCP connections run back to back through an
allowed pair while the entry that allows them is deleted from the VSD; the figure is the time from the
DELETE request to the first connection attempt that failed, after which none succeeded.

The path measured: VSD commit -> change stream -> VSC compile -> flow-mod bundle -> OVS on the
sender's host (the ingress ACL runs there). Established connections are not part of it: their packets
are `+est` in conntrack and skip the ACL, as in Nuage (stateful entries)."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from vsplab.emu.check import container_netns
from vsplab.emu.probes import Listeners, tcp_connect
from vsplab.scenario.to_vsd import PlacedContainer

ATTEMPT_TIMEOUT = 0.1  # an allowed connect takes ~2 ms here; 100 ms of silence is a drop


class RevocationError(RuntimeError):
    pass


@dataclass
class Revocation:
    entry_id: str
    label: str
    delete_seconds: float  # the REST DELETE's own duration
    denied_after: float  # from sending the DELETE to the first failed attempt that stayed failed
    attempts: int

    def text(self) -> str:
        return (f"{self.label}: denied {self.denied_after * 1000:.0f} ms after the DELETE of ACL entry "
                f"{self.entry_id} (the DELETE itself {self.delete_seconds * 1000:.0f} ms; {self.attempts} "
                f"connection attempts)")


def find_ingress_entry(client, src: PlacedContainer, dst: PlacedContainer, port: int) -> dict:
    """The ingress entry of src's domain allowing TCP to `port` from one of src's policy groups to one
    of dst's (what the sender's host evaluates)."""
    ent = next((e for e in client.list("enterprises") if e["name"] == src.enterprise), None)
    dom = next((d for d in client.list(f"enterprises/{ent['ID']}/domains") if d["name"] == src.domain), None) \
        if ent else None
    if dom is None:
        raise RevocationError(f"no domain {src.enterprise}/{src.domain} in the VSD")
    groups = {g["name"]: g["ID"] for g in client.list(f"domains/{dom['ID']}/policygroups")}
    src_ids = {groups[g] for g in src.groups if g in groups}
    dst_ids = {groups[g] for g in dst.groups if g in groups}
    for t in client.list(f"domains/{dom['ID']}/ingressacltemplates"):
        for e in client.list(f"ingressacltemplates/{t['ID']}/ingressaclentrytemplates"):
            if (e.get("action") == "FORWARD" and e.get("protocol") == "6"
                    and str(e.get("destinationPort")) == str(port)
                    and e.get("locationID") in src_ids and e.get("networkID") in dst_ids):
                return e
    raise RevocationError(f"no ingress entry allows {src.name} -> {dst.name} tcp/{port} by policy group")


def measure(client, listeners: Listeners, src: PlacedContainer, dst: PlacedContainer, port: int,
            timeout: float = 5.0) -> Revocation:
    entry = find_ingress_entry(client, src, dst, port)
    listeners.tcp_on(container_netns(dst.name), dst.ip, port)
    attempts: list[tuple[float, bool]] = []
    stop = threading.Event()

    def connect_loop() -> None:
        while not stop.is_set():
            t = time.perf_counter()
            ok, _, _ = tcp_connect(container_netns(src.name), dst.ip, port, ATTEMPT_TIMEOUT,
                                   expect_netns=container_netns(dst.name))
            attempts.append((t, ok))

    worker = threading.Thread(target=connect_loop, name="revocation-probe", daemon=True)
    worker.start()
    try:
        end = time.monotonic() + 2.0
        while sum(ok for _, ok in attempts) < 5:
            if time.monotonic() > end or not worker.is_alive():
                raise RevocationError(f"{src.name} -> {dst.name} tcp/{port} does not pass before the DELETE")
            time.sleep(0.01)
        t_del = time.perf_counter()
        client.delete(f"ingressaclentrytemplates/{entry['ID']}")
        delete_seconds = time.perf_counter() - t_del
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            last_ok = max((t for t, ok in attempts if ok), default=0.0)
            # settled: a full second of attempts since the last success, all failed
            if time.perf_counter() - max(last_ok, t_del) > 1.0 and attempts[-1][0] > last_ok:
                break
            time.sleep(0.05)
        else:
            raise RevocationError(f"{src.name} -> {dst.name} tcp/{port} still passes {timeout}s after the DELETE")
    finally:
        stop.set()
        worker.join(2)
    last_ok = max((t for t, ok in attempts if ok), default=t_del)
    first_fail = min(t for t, ok in attempts if not ok and t > last_ok)
    return Revocation(entry["ID"], f"{src.name} -> {dst.name} tcp/{port}", delete_seconds,
                      max(first_fail - t_del, 0.0), len(attempts))
