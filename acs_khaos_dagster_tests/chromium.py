"""Drive a real headless Chromium (Debian's ``chromium``) from tests, with no extra packages.

Locally a missing browser skips the test with the reason; in CI (``CI`` set) it fails,
because CI must install it (``apt-get install -y chromium``).
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

# CI runs as root, hence --no-sandbox. The host resolver rule makes any network fetch
# fail, so a page that renders proves it needs nothing from the network.
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND",
)
TIMEOUT_S = 60


def chromium() -> str:
    """The browser's path; skips (locally) or fails (in CI) when it is not installed."""
    for name in ("chromium", "chromium-browser"):
        path = shutil.which(name)
        if path:
            return path
    reason = "chromium is not installed (Debian: apt-get install -y chromium)"
    if os.environ.get("CI"):
        pytest.fail(f"{reason}; CI must install it")
    pytest.skip(reason)


def _run(args: list[str], profile: Path) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        check=False,
    )
    assert result.returncode == 0, f"chromium failed ({result.returncode}): {result.stderr[-2000:]}"
    return result


def dump_dom(page: Path, profile: Path) -> str:
    """The DOM after the page has loaded, serialised by the browser."""
    return _run(["--dump-dom", page.resolve().as_uri()], profile).stdout


def screenshot(page: Path, png: Path, profile: Path, size: tuple[int, int] = (1280, 2000)) -> None:
    _run(
        [f"--screenshot={png}", f"--window-size={size[0]},{size[1]}", page.resolve().as_uri()],
        profile,
    )
    assert png.exists(), "chromium wrote no screenshot"


def decode_png(path: Path) -> np.ndarray:
    """Pixels (height, width, channels) of an 8-bit non-interlaced RGB/RGBA PNG."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, chunks = 8, []
    width = height = channels = 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and interlace == 0 and colour in (2, 6), "unexpected PNG format"
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            chunks.append(body)
        pos += 12 + length
    stride = width * channels
    raw = np.frombuffer(zlib.decompress(b"".join(chunks)), dtype=np.uint8)
    raw = raw.reshape(height, stride + 1)
    out = np.zeros((height, stride), dtype=np.int64)
    prev = np.zeros(stride, dtype=np.int64)
    for y in range(height):
        kind, line = raw[y, 0], raw[y, 1:].astype(np.int64)
        if kind == 0:
            cur = line
        elif kind == 1:  # Sub: a running sum per channel
            cur = np.cumsum(line.reshape(width, channels), axis=0).reshape(stride) % 256
        elif kind == 2:  # Up
            cur = (line + prev) % 256
        else:  # Average / Paeth depend on the byte to the left: a plain loop
            cur = np.array(_unfilter_slow(int(kind), line.tolist(), prev.tolist(), channels))
        out[y] = cur
        prev = cur
    return out.reshape(height, width, channels).astype(np.uint8)


def _unfilter_slow(kind: int, line: list[int], prev: list[int], bpp: int) -> list[int]:
    # Plain ints and local names: this loop is most of the decoding time.
    cur = line[:bpp] + [0] * (len(line) - bpp)
    if kind == 3:
        for i in range(bpp):
            cur[i] = (line[i] + prev[i] // 2) & 0xFF
        for i in range(bpp, len(line)):
            cur[i] = (line[i] + ((cur[i - bpp] + prev[i]) >> 1)) & 0xFF
        return cur
    for i in range(bpp):  # Paeth with nothing on the left predicts "up"
        cur[i] = (line[i] + prev[i]) & 0xFF
    for i in range(bpp, len(line)):
        a, b, c = cur[i - bpp], prev[i], prev[i - bpp]
        pa, pb, pc = abs(b - c), abs(a - c), abs(a + b - 2 * c)
        cur[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
    return cur


class PageFacts(HTMLParser):
    """What a test needs from a page: attributes by element id, marks per chart, URLs."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.by_id: dict[str, dict[str, str]] = {}
        self.text_by_id: dict[str, str] = {}
        self.marks: dict[str, int] = {}
        self.svgs: list[str] = []
        self._svg: str | None = None
        self._open: list[str] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {k: v or "" for k, v in attrs}
        if "id" in values:
            self.by_id[values["id"]] = values
            self.text_by_id[values["id"]] = ""
            self._open.append(values["id"])
        if tag == "svg":
            self._svg = values.get("id", "")
            self.svgs.append(self._svg)
            self.marks.setdefault(self._svg, 0)
        elif self._svg is not None and "mark" in values.get("class", "").split():
            self.marks[self._svg] += 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._svg = None

    def handle_data(self, data: str) -> None:
        for element_id in self._open:
            self.text_by_id[element_id] += data
        # Ids are on leaf-ish elements (spans, strong): close them at their first text.
        self._open.clear()
