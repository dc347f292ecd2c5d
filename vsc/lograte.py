"""Log lines about what others send the VSC, at a bounded rate: a switch or an agent repeating a bad
message must not bury the log (nor fill the disk), and the first lines of each kind still tell what
happened."""

from __future__ import annotations

import logging
import time


class LogRate:
    """At most `burst` lines per key in each `every` seconds; the next line logged after lines were left
    out says how many."""

    def __init__(self, logger: logging.Logger, every: float = 10.0, burst: int = 5) -> None:
        self.logger, self.every, self.burst = logger, every, burst
        self._windows: dict[object, list] = {}  # key -> [window start, lines logged, lines left out]

    def log(self, key: object, level: int, fmt: str, *args, **kwargs) -> bool:
        """Log unless this key is over its rate; returns whether it logged."""
        now = time.monotonic()
        w = self._windows.get(key)
        if w is None or now - w[0] >= self.every:
            if len(self._windows) > 10_000:  # keys from a flood of distinct peers: forget the old windows
                self._windows.clear()
            left_out = w[2] if w is not None else 0
            w = self._windows[key] = [now, 0, left_out]
        if w[1] >= self.burst:
            w[2] += 1
            return False
        w[1] += 1
        if w[2]:
            fmt, args = fmt + " (%d similar lines left out before this one)", (*args, w[2])
            w[2] = 0
        self.logger.log(level, fmt, *args, **kwargs)
        return True
