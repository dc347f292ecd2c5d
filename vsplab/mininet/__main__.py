"""`python -m vsplab.mininet leftovers|cleanup`: list or remove what an interrupted Mininet lab left
(vsplab/mininet/leftovers.py)."""

from __future__ import annotations

import sys

from vsplab.mininet import leftovers


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "leftovers"
    if cmd == "leftovers":
        found = leftovers.find()
        print("\n".join(found) if found else "no leftovers")
        return 1 if found else 0
    if cmd == "cleanup":
        try:
            removed = leftovers.cleanup()
        except leftovers.LeftoversError as e:
            print(f"vsplab.mininet cleanup: {e}", file=sys.stderr)
            return 1
        print("\n".join(removed) if removed else "nothing to remove")
        return 0
    print("usage: python -m vsplab.mininet leftovers|cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
