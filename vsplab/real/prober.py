"""`python -m vsplab.real.prober`: the real packets of `--mode real`, sent and received on the host
where the containers are. The front end starts one per host through the host's access (SSH, or
nsenter for an emulated host: vsplab/real/access.py) and talks JSON lines over its stdin/stdout; each
request runs on a thread of its own, so a probe waiting out its timeout holds up no other.

    {"id": 1, "op": "tcp_listen", "netns": "vl-c-app1", "ip": "10.2.0.11", "port": 8080}
    {"id": 2, "op": "tcp", "netns": "vl-c-web1", "dst": "10.2.0.11", "port": 8080, "timeout": 2,
     "expect_netns": "vl-c-app1"}                                  -> {"id": 2, "ok": true, "why": ""}
    {"id": 3, "op": "ping", "netns": ..., "dst": ..., "count": 3, "timeout": 0.5}  -> {"rtts": [...]}
    {"id": 4, "op": "udp_listen", ...}; {"op": "udp_send", "netns", "dst", "port", "token"};
    {"op": "udp_seen", "netns", "ip", "port", "token", "timeout"} -> {"ok": bool}

The sockets are the emulator's (vsplab/emu/probes.py): opened inside the container's namespace."""

from __future__ import annotations

import json
import select
import socket
import sys
import threading

from vsplab.emu.probes import Listeners, ping, socket_in, tcp_connect


class Prober:
    def __init__(self) -> None:
        self.listeners = Listeners()
        self._out = threading.Lock()

    def answer(self, req: dict) -> dict:
        op = req["op"]
        if op == "hello":
            return {"host": socket.gethostname()}
        if op == "tcp_listen":
            self.listeners.tcp_on(req["netns"], req["ip"], req["port"])
            return {}
        if op == "udp_listen":
            self.listeners.udp_on(req["netns"], req["ip"], req["port"])
            return {}
        if op == "tcp":
            ok, why, seconds = tcp_connect(req["netns"], req["dst"], req["port"], req["timeout"],
                                           expect_netns=req.get("expect_netns"))
            return {"ok": ok, "why": why, "seconds": seconds}
        if op == "ping":
            return {"rtts": ping(req["netns"], req["dst"], count=req["count"], timeout=req["timeout"],
                                 stop_on_reply=True)}
        if op == "udp_send":
            s = socket_in(req["netns"], socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.sendto(req["token"].encode(), (req["dst"], req["port"]))
            finally:
                s.close()
            return {}
        if op == "udp_seen":
            return {"ok": self._udp_seen(req)}
        raise ValueError(f"unknown op {op!r}")

    def _udp_seen(self, req: dict) -> bool:
        listener = self.listeners.udp_on(req["netns"], req["ip"], req["port"])
        want = req["token"].encode()
        while select.select([listener], [], [], req["timeout"])[0]:
            try:
                if listener.recv(2048) == want:
                    return True
            except BlockingIOError:
                continue
        return False

    def handle(self, line: str) -> None:
        req: dict = {}
        try:
            req = json.loads(line)
            reply = {"id": req.get("id"), **self.answer(req)}
        except Exception as e:  # a failed request is answered, the prober goes on
            reply = {"id": req.get("id"), "error": f"{type(e).__name__}: {e}"}
        with self._out:
            sys.stdout.write(json.dumps(reply) + "\n")
            sys.stdout.flush()

    def serve(self) -> None:
        for line in sys.stdin:  # until the front end closes our stdin
            if line.strip():
                threading.Thread(target=self.handle, args=(line,), daemon=True).start()
        self.listeners.close()


if __name__ == "__main__":
    Prober().serve()
