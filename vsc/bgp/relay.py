"""The program ExaBGP runs as its API process: it connects to the speaker's Unix socket and copies
lines both ways - ExaBGP's JSON messages (its stdout to us, our stdin) to the speaker, the speaker's
text commands to ExaBGP. No routes are made or kept here.

    python -m vsc.bgp.relay SOCKET

One thread per direction: ExaBGP blocks while writing to us, and a single loop blocked on writing
commands to ExaBGP would stop reading and deadlock the pair. The relay ends when either side
closes, and when ExaBGP dies (stdin at end of file, and the parent-death signal as a backstop).
"""

from __future__ import annotations

import ctypes
import os
import signal
import socket
import sys
import threading
from collections.abc import Callable

CHUNK = 1 << 16
PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    try:
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass  # not Linux: stdin's end of file still ends the relay


def _copy(read_fd: int, write: Callable[[bytes], None], done: threading.Event) -> None:
    try:
        while chunk := os.read(read_fd, CHUNK):
            write(chunk)
    except OSError:
        pass
    finally:
        done.set()


def _write_all(fd: int):
    def write(data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    return write


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: python -m vsc.bgp.relay SOCKET", file=sys.stderr)
        return 2
    _die_with_parent()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.connect(argv[0])
    except OSError as exc:
        print(f"relay: cannot connect to {argv[0]}: {exc}", file=sys.stderr)
        return 1
    done = threading.Event()
    stdin, stdout = sys.stdin.fileno(), sys.stdout.fileno()
    for args in ((stdin, sock.sendall, done), (sock.fileno(), _write_all(stdout), done)):
        threading.Thread(target=_copy, args=args, daemon=True).start()
    done.wait()
    sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
