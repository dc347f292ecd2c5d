"""The OpenFlow TCP connection of one simulated switch to its controller, as OVS runs it: the switch
connects, says HELLO, answers everything the controller asks, probes an idle controller with
ECHO_REQUEST, and when the connection drops it reconnects with exponential backoff (1 s doubling to
8 s, OVS's defaults) while keeping its flows (fail_mode=secure).

Only whole messages count as a controller's activity, as in OVS: a controller that never says HELLO,
or stops (or trickles bytes) inside a message, is dropped after a few seconds and reconnected, rather
than holding the switch's only controller connection open."""

from __future__ import annotations

import asyncio
import gc
import logging

from openflow import encode
from vrs.reconnect import MAX_WAIT, Backoff
from vrs.sim import bundles
from vrs.sim.switch import SimSwitch

log = logging.getLogger(__name__)

INACTIVITY_PROBE = 5.0  # OVS's default controller inactivity probe, seconds
# Seconds the controller has for its HELLO after connecting (OVS allows the handshake its reconnect
# backoff, 1 to 8 s), and for the rest of a message once its first bytes arrived. Read when a
# client is created.
HELLO_TIMEOUT = 5.0
MESSAGE_TIMEOUT = 5.0
# With N > 0, freeze the garbage collector's view of every object alive after each N flow-mods
# received in this process: installed flows live until deleted (freed by refcount, not by the cycle
# collector), and re-scanning hundreds of thousands of them on every collection costs ~20% of the
# per-flow-mod CPU. The price is that reference cycles alive at a freeze are never collected.
GC_FREEZE_EVERY = 0
_freeze_at = [0, 0]  # flow-mods seen by this process, count at which to freeze next


class _Protocol(asyncio.Protocol):
    def __init__(self, switch: SimSwitch, closed: asyncio.Future):
        self.switch = switch
        self.closed = closed
        self.transport: asyncio.Transport | None = None
        self.pending = b""
        self.last_rx = 0.0  # when the last whole message arrived
        self.partial_since = 0.0  # when the first bytes of the incomplete message in `pending` arrived
        self.connected_at = 0.0
        self.hello_seen = False
        self.probe_xid = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        self.switch.new_connection()
        self.connected_at = self.last_rx = asyncio.get_running_loop().time()
        transport.write(encode.hello(1))

    def data_received(self, data: bytes) -> None:
        now = asyncio.get_running_loop().time()
        had_partial = bool(self.pending)
        if had_partial:
            data = self.pending + data
        n = len(data)
        off = 0
        handle = self.switch.handle
        flow_mod = self.switch.flow_mod
        sw = self.switch
        out: list[bytes] = []
        while n - off >= 8:
            length = (data[off + 2] << 8) | data[off + 3]
            if length < 8:
                # A length below the header size cannot be framed past: OVS drops such a peer too.
                log.warning("%s: bad OpenFlow length %d, disconnecting", self.switch.name, length)
                self.transport.close()
                return
            if n - off < length:
                break
            msg = data[off : off + length] if off or length != n else data
            t = data[off + 1]
            if t == 14 and data[off] == 4:  # OpenFlow 1.3 FLOW_MOD
                replies = flow_mod(msg, now)
            elif t == 4 and data[off] == 4:  # EXPERIMENTER: bundle-adds come by the hundred thousand too
                replies = bundles.add_fast(sw, msg)
            else:
                if t == 0:  # OFPT_HELLO
                    self.hello_seen = True
                replies = handle(msg)
            if replies:
                out += replies
            off += length
        if off:
            self.last_rx = now
        if off < n:
            if off or not had_partial:  # a new incomplete message starts in this batch
                self.partial_since = now
            self.pending = data[off:]
        else:
            self.pending = b""
        if GC_FREEZE_EVERY:
            _freeze_at[0] += off // 160  # roughly the flow-mods of this batch; exactness does not matter
            if _freeze_at[0] >= _freeze_at[1]:
                gc.freeze()
                _freeze_at[1] = _freeze_at[0] + GC_FREEZE_EVERY
        if out:
            self.transport.write(b"".join(out))

    def send(self, msg: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(msg)

    def connection_lost(self, exc) -> None:
        self.transport = None
        if not self.closed.done():
            self.closed.set_result(exc)


class OpenFlowClient:
    """Keeps `switch` connected to host:port; `send()` is for asynchronous messages (PORT_STATUS)."""

    def __init__(self, switch: SimSwitch, host: str, port: int):
        self.switch = switch
        self.host = host
        self.port = port
        self.proto: _Protocol | None = None
        self.connected = asyncio.Event()
        self.connects = 0
        self.hello_timeout = HELLO_TIMEOUT
        self.message_timeout = MESSAGE_TIMEOUT
        self._task: asyncio.Task | None = None
        self._stopping = False

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name=f"of-{self.switch.name}")

    async def stop(self) -> None:
        self._stopping = True
        if self.proto is not None and self.proto.transport is not None:
            self.proto.transport.close()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def send(self, msg: bytes) -> bool:
        if self.proto is None or self.proto.transport is None:
            return False
        self.proto.send(msg)
        return True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delays = Backoff()
        while not self._stopping:
            closed = loop.create_future()
            try:
                _, proto = await loop.create_connection(lambda c=closed: _Protocol(self.switch, c), self.host, self.port)
            except OSError as e:
                wait = delays.next()
                log.debug("%s: controller %s:%d unreachable (%s), retry in %.0fs", self.switch.name, self.host,
                          self.port, e, wait)
                await asyncio.sleep(wait)
                continue
            self.proto = proto
            self.connects += 1
            self.connected.set()
            started = loop.time()
            await self._watch(proto, closed)
            self.connected.clear()
            self.proto = None
            if self._stopping:
                return
            if loop.time() - started > MAX_WAIT:
                delays.reset()  # it had been up a while: start the backoff over
            wait = delays.next()
            log.info("%s: controller connection lost, reconnecting in %.0fs", self.switch.name, wait)
            await asyncio.sleep(wait)

    async def _watch(self, proto: _Protocol, closed: asyncio.Future) -> None:
        """Wait for the connection to end; probe it when idle and give up on a silent controller."""
        loop = asyncio.get_running_loop()
        probing = False
        tick = min(1.0, self.hello_timeout / 2, self.message_timeout / 2)
        while not closed.done():
            now = loop.time()
            stalled = self._stalled(proto, now)
            if stalled:
                log.warning("%s: %s, disconnecting", self.switch.name, stalled)
                proto.transport.abort()  # not close(): a peer that stalls may not read what is queued either
                break
            idle = now - proto.last_rx
            if idle >= INACTIVITY_PROBE * (2 if probing else 1):
                if probing:
                    log.warning("%s: controller silent for %.0fs, disconnecting", self.switch.name, idle)
                    proto.transport.close()
                    break
                proto.probe_xid = (proto.probe_xid + 1) & 0xFFFFFFFF
                proto.send(encode.echo_request(0xEC000000 | (proto.probe_xid & 0xFFFFFF)))
                probing = True
            elif idle < INACTIVITY_PROBE:
                probing = False
            try:
                await asyncio.wait_for(asyncio.shield(closed), timeout=tick)
            except TimeoutError:
                pass
        if not closed.done():
            await closed

    def _stalled(self, proto: _Protocol, now: float) -> str | None:
        """Why the controller is to be dropped for not talking OpenFlow, if it is."""
        if not proto.hello_seen and now - proto.connected_at >= self.hello_timeout:
            return f"no HELLO from the controller in {now - proto.connected_at:.1f}s"
        if proto.pending and now - proto.partial_since >= self.message_timeout:
            return f"controller stalled {now - proto.partial_since:.1f}s inside a message"
        return None
