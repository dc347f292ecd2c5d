"""`leftovers|cleanup` for the modes that leave things on the machine when killed (emu, Mininet).
Each mode's `leftovers` module offers find(), cleanup() and LeftoversError; this is their command line,
shared by `python -m vsplab.emu`, `python -m vsplab.mininet` and `vsplab clean`."""

from __future__ import annotations

import sys
from types import ModuleType


def leftovers_main(argv: list[str], leftovers: ModuleType, prog: str) -> int:
    cmd = argv[0] if argv else "leftovers"
    if cmd == "leftovers":
        found = leftovers.find()
        print("\n".join(found) if found else "no leftovers")
        return 1 if found else 0
    if cmd == "cleanup":
        try:
            removed = leftovers.cleanup(force=True) if "--force" in argv else leftovers.cleanup()
        except leftovers.LeftoversError as e:
            print(f"{prog} cleanup: {e}", file=sys.stderr)
            return 1
        print("\n".join(removed) if removed else "nothing to remove")
        return 0
    print(f"usage: python -m {prog} leftovers|cleanup", file=sys.stderr)
    return 2
