"""Headless Chromium for browser tests: Debian's ``chromium`` package driven by Playwright, never a download.

Without the binary the test is skipped with the reason, except under CI (``CI=true``), where it fails: there
``.ci/run`` installs Debian's chromium first, so a missing binary is a broken setup.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, sync_playwright

CANDIDATES = ("chromium", "chromium-browser")


def chromium_binary() -> str:
    """``CHROMIUM_PATH`` when set, else Debian's chromium on PATH."""
    binary = os.environ.get("CHROMIUM_PATH") or next(filter(None, map(shutil.which, CANDIDATES)), None)
    if binary is None:
        why = "chromium is not installed (apt-get install -y chromium; .ci/run installs it in CI)"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(f"CI=true but {why}", pytrace=False)
        pytest.skip(why)
    return binary


@contextmanager
def chromium() -> Iterator[Browser]:
    """A headless Chromium, closed on exit (Playwright runs it without its sandbox, which root cannot use)."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium_binary(), headless=True)
        try:
            yield browser
        finally:
            browser.close()
