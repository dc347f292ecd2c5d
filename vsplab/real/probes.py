"""The front end's side of a host's prober (vsplab/real/prober.py): one process per host, started
through the host's access, requests answered out of order by id."""

from __future__ import annotations

import itertools
import json
import threading
from concurrent.futures import Future

from vsplab.real.access import HostAccess, RealError

REQUEST_TIMEOUT = 30.0  # the longest probe waits a few seconds; a silent prober is a dead one


class ProberError(RealError):
    pass


class HostProber:
    def __init__(self, access: HostAccess, bindir: str) -> None:
        self.access = access
        self.proc = access.spawn([f"{bindir}/python", "-m", "vsplab.real.prober"])
        self._ids = itertools.count(1)
        self._waiting: dict[int, Future] = {}
        self._lock = threading.Lock()
        self._stderr: list[str] = []
        threading.Thread(target=self._read, daemon=True, name=f"prober-{access.name}").start()
        threading.Thread(target=self._read_stderr, daemon=True, name=f"prober-err-{access.name}").start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            try:
                reply = json.loads(line)
            except ValueError:
                continue
            with self._lock:
                fut = self._waiting.pop(reply.get("id"), None)
            if fut is not None:
                fut.set_result(reply)
        with self._lock:  # the prober is gone: nobody waits for an answer that cannot come
            for fut in self._waiting.values():
                fut.set_exception(ProberError(f"the prober on {self.access.name} exited: {self.stderr_tail()}"))
            self._waiting.clear()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self._stderr = (self._stderr + [line])[-20:]

    def stderr_tail(self) -> str:
        return "".join(self._stderr).strip()[-1500:] or f"exit status {self.proc.poll()}"

    def request(self, op: str, **fields) -> dict:
        fut: Future = Future()
        with self._lock:
            if not self.alive():
                raise ProberError(f"the prober on {self.access.name} is not running: {self.stderr_tail()}")
            rid = next(self._ids)
            self._waiting[rid] = fut
            self.proc.stdin.write(json.dumps({"id": rid, "op": op, **fields}) + "\n")
            self.proc.stdin.flush()
        reply = fut.result(REQUEST_TIMEOUT)
        if "error" in reply:
            raise ProberError(f"{self.access.name}: {op}: {reply['error']}")
        return reply

    def hello(self) -> str:
        return self.request("hello")["host"]

    def alive(self) -> bool:
        return self.proc.poll() is None

    def close(self) -> None:
        if self.proc.poll() is None:
            try:
                self.proc.stdin.close()  # the prober ends when its input does
                self.proc.wait(5)
            except Exception:
                self.proc.kill()
                self.proc.wait()
