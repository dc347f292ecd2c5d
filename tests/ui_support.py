"""Debian's Chromium, headless, driven by Selenium through chromedriver, for the teaching page's tests;
skipped (naming why) where the packages are missing. Everything it starts is ended by PID."""

from __future__ import annotations

import os
import shutil
import signal
import tempfile
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def need_browser():
    """The selenium module, or a skip naming what is missing."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed (pip install -e .[test])")
    if not (os.access(CHROMIUM, os.X_OK) and os.access(CHROMEDRIVER, os.X_OK)):
        pytest.skip(f"needs Debian's chromium and chromium-driver ({CHROMIUM}, {CHROMEDRIVER}; scripts/system-deps)",
                    allow_module_level=True)
    return webdriver


def _descendants(pid: int) -> list[int]:
    """Every process below `pid` (chromium forks a zygote, renderers, a GPU process)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    out, todo = [], [pid]
    while todo:
        for c in children.get(todo.pop(), []):
            out.append(c)
            todo.append(c)
    return out


@contextmanager
def chromium():
    webdriver = need_browser()
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="vl-ui-chromium-")
    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,1000", f"--user-data-dir={profile}", "--no-first-run"):
        opts.add_argument(arg)
    service = Service(CHROMEDRIVER)
    driver = webdriver.Chrome(service=service, options=opts)
    driver_pid = service.process.pid
    try:
        yield driver
    finally:
        pids = _descendants(driver_pid)
        try:
            driver.quit()
        finally:
            for pid in [*pids, driver_pid]:  # whatever quit() left, by PID
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            shutil.rmtree(profile, ignore_errors=True)
