"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``
driven by selenium (the ``browser`` extra). Importing this module skips the importing test
module, naming what is missing, when one of them is absent."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

CHROMIUM = os.environ.get("CONVALGEBRA_CHROMIUM") or shutil.which("chromium")
DRIVER = os.environ.get("CONVALGEBRA_CHROMEDRIVER") or shutil.which("chromedriver")
if CHROMIUM is None or DRIVER is None:
    pytest.skip(
        "no headless browser: apt-get install chromium chromium-driver "
        "(or set CONVALGEBRA_CHROMIUM and CONVALGEBRA_CHROMEDRIVER)",
        allow_module_level=True,
    )
# exc_type: a selenium that is present but cannot be imported skips too (pytest >= 8.2)
webdriver = pytest.importorskip(
    "selenium.webdriver",
    reason="selenium is not installed: pip install 'convalgebra[browser]'",
    exc_type=ImportError,
)
from selenium.webdriver.chrome.service import Service  # noqa: E402


@contextmanager
def chromium(folder: Path, width: int = 1400, height: int = 1000) -> Iterator:
    """A headless Chromium with its own profile in ``folder``, its console log kept."""
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={folder / 'profile'}",
        f"--window-size={width},{height}",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def console_problems(driver) -> list:
    """The console's errors and warnings since the last call."""
    return [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "WARNING")]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG from its header (after checking the signature)."""
    import struct

    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
