"""How a VRS paces its attempts to reach a VSC, on the OpenFlow connection and on the agent channel,
simulated or real: wait, double the wait after every failed attempt up to a ceiling, start over once
connected. OVS's own controller reconnect works this way (1 s doubling to 8 s), so the simulated
switch and the real agent back off like the vswitchd beside them.

Only the arithmetic lives here: the loops sleep in their own way (a threading.Event the agent's
stop() sets, asyncio.sleep in the simulator)."""

from __future__ import annotations

MAX_WAIT = 8.0  # seconds; OVS's max_backoff default


class Backoff:
    """The waits between connection attempts: `first`, doubling on each `next()`, at most `most`."""

    def __init__(self, first: float = 1.0, most: float = MAX_WAIT) -> None:
        self.first, self.most = first, most
        self._wait = first

    def next(self) -> float:
        """The wait before the next attempt; the one after will be twice as long (up to `most`)."""
        wait = self._wait
        self._wait = min(wait * 2, self.most)
        return wait

    def reset(self) -> None:
        """Connected: the next failure waits `first` again."""
        self._wait = self.first
