"""`python -m vsplab.mininet leftovers|cleanup`: list or remove what an interrupted Mininet lab left
(the vl-mn namespace with its OVS and Mininet driver, the hosts' vl-mn-c-* namespaces, vl-mnm0)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from vsplab.mininet.fabric import MininetFabric


def main(argv: list[str]) -> int:
    cmd = argv[0] if argv else "leftovers"
    found = MininetFabric.leftovers()
    if cmd == "leftovers":
        print("\n".join(found) if found else "no leftovers")
        return 1 if found else 0
    if cmd == "cleanup":
        # every process in these namespaces belongs to the Mininet lab that made them
        MininetFabric(Path(tempfile.gettempdir()) / "vsplab-mininet-cleanup", 1).stop()
        print("\n".join(found) if found else "nothing to remove")
        return 0
    print("usage: python -m vsplab.mininet leftovers|cleanup", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
