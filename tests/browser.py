"""Debian's Chromium, headless, through Playwright: for the browser test of the listening page and for
``scripts/make_listen_example.py``'s screenshot. Nothing here downloads a browser: Playwright drives
the system binary (``apt-get install chromium``, done by install.sh) through ``executable_path``.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

CHROMIUM = Path("/usr/bin/chromium")
#: Headless, offline and quiet: no sandbox (containers, root), no GPU, no QUIC, no first-run UI, no
#: background requests, component updates or sync.
CHROMIUM_ARGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync")


@contextlib.contextmanager
def chromium_context(width: int = 1280, height: int = 900) -> Iterator[Any]:
    """A Playwright browser context of the system Chromium with a fresh, temporary user-data-dir.

    Raises FileNotFoundError when Chromium is not installed, ImportError without playwright.
    """
    from playwright.sync_api import sync_playwright

    if not CHROMIUM.is_file():
        raise FileNotFoundError(f"{CHROMIUM} not found: install Debian's chromium (see install.sh)")
    with tempfile.TemporaryDirectory(prefix="diveq-chromium-") as profile, \
            sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS),
            viewport={"width": width, "height": height})
        try:
            yield context
        finally:
            context.close()
