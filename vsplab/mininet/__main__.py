"""`python -m vsplab.mininet leftovers|cleanup`: list or remove what an interrupted Mininet lab left
(vsplab/mininet/leftovers.py)."""

from __future__ import annotations

import sys

from vsplab.lab.leftovers_cli import leftovers_main
from vsplab.mininet import leftovers


def main(argv: list[str]) -> int:
    return leftovers_main(argv, leftovers, "vsplab.mininet")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
