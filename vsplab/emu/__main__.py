"""`python -m vsplab.emu leftovers|cleanup [--force]`: list or remove what an interrupted emulated lab left."""

from __future__ import annotations

import sys

from vsplab.emu import leftovers
from vsplab.lab.leftovers_cli import leftovers_main


def main(argv: list[str]) -> int:
    return leftovers_main(argv, leftovers, "vsplab.emu")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
