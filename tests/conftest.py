"""Test-run policy shared by every test module."""

from __future__ import annotations

import os

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Root-only tests (namespaces, OVS, Mininet) skip as a non-root developer runs the suite, in one
    # place rather than a skipif per module; CI runs as root, so there they all run.
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (marked root; CI runs these as root)")
    for item in items:
        if item.get_closest_marker("root") is not None:
            item.add_marker(skip)
