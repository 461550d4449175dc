"""Still images that fit a byte budget: WebP at the best quality whose bytes fit, remembered per image size.

The budget is :data:`STILL_BUDGET_BYTES` for a 1920×1080 image and scales with the pixel count
(a 3840×2160 wall gets four times as many bytes, a 960×540 box a quarter). A light scene (a few
flat districts) fits at the top of :data:`QUALITIES` and keeps it; a dense one (the demo's 30,000
towers) gets the best quality that still fits. The quality found is kept per image size, so a
steady view encodes each frame once and searches again only when a frame no longer fits, or
falls far below the budget (:data:`RAISE_BELOW`).

WebP, not JPEG: at the same bytes it is 1.5-4 dB PSNR closer to the lossless frame on the demo's
views (``benchmarks/bench_app.py --only remote`` prints both), for ~8x the encode time of
libjpeg-turbo (~80 ms CPU for a 1920×1080 frame at ``method`` 2). Pillow encodes with the GIL
released, so other threads (layer builds) keep running. Browsers decode the bytes by content,
whatever type the page declares.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image

__all__ = ["BUDGET_PIXELS", "QUALITIES", "RAISE_BELOW", "STILL_BUDGET_BYTES", "EncodedStill", "StillEncoder", "budget_bytes"]

STILL_BUDGET_BYTES = 150_000
"""Bytes of one still image at 1920×1080 (issue 12)."""
BUDGET_PIXELS = 1920 * 1080
"""The pixel count :data:`STILL_BUDGET_BYTES` is given for."""
QUALITIES = (90, 80, 70, 60, 50, 42, 35, 29, 24, 20, 16, 13, 10, 7, 4)
"""WebP qualities tried, best first (a search takes at most 4-5 encodes)."""
RAISE_BELOW = 0.6
"""A frame under this share of the budget at the remembered quality searches the better qualities again."""
WEBP_METHOD = 2
"""libwebp's effort (0-6): 2 is ~0.5 dB under 4 at the same bytes, for half its encode time."""


def budget_bytes(width: int, height: int, budget: int = STILL_BUDGET_BYTES) -> int:
    """The byte budget of a ``width`` × ``height`` image: ``budget`` per 1920×1080 pixels, scaled by pixel count (at least 1 kB)."""
    return max(1000, round(budget * width * height / BUDGET_PIXELS))


@dataclass(frozen=True)
class EncodedStill:
    """One encoded still: the WebP ``data``, the ``quality`` used, how many encodes the search took and their wall seconds."""

    data: bytes
    quality: int
    probes: int
    seconds: float


class StillEncoder:
    """Encodes still frames as WebP within a byte budget (``budget`` bytes per 1920×1080), the best quality that fits.

    One encoder serves a view: it remembers the quality chosen for each image size. A frame that
    does not fit even at the lowest quality is sent at the lowest quality (over the budget).
    """

    def __init__(self, budget: int = STILL_BUDGET_BYTES, method: int = WEBP_METHOD) -> None:
        self.budget, self.method = budget, method
        self._index: dict[tuple[int, int], int] = {}

    def quality_for(self, width: int, height: int) -> int:
        """The quality the next ``width`` × ``height`` frame is tried at first."""
        return QUALITIES[self._index.get((width, height), 0)]

    def encode(self, rgb: NDArray[np.uint8]) -> EncodedStill:
        """``rgb`` (height, width, 3) uint8, top row first, as WebP within the budget of its size."""
        started = time.perf_counter()
        image = Image.fromarray(np.ascontiguousarray(rgb[:, :, :3]), "RGB")
        limit = budget_bytes(image.width, image.height, self.budget)
        tried: dict[int, bytes] = {}

        def fits(index: int) -> bool:
            if index not in tried:
                tried[index] = self._webp(image, QUALITIES[index])
            return len(tried[index]) <= limit

        start = self._index.get(image.size, 0)
        if fits(start):
            best = start if start == 0 or len(tried[start]) >= RAISE_BELOW * limit else _first_fit(fits, 0, start)
        else:
            best = _first_fit(fits, start + 1, len(QUALITIES) - 1)
            if not fits(best):
                best = len(QUALITIES) - 1
        self._index[image.size] = best
        return EncodedStill(tried[best], QUALITIES[best], len(tried), time.perf_counter() - started)

    def _webp(self, image: Image.Image, quality: int) -> bytes:
        out = io.BytesIO()
        image.save(out, "WEBP", quality=quality, method=self.method)
        return out.getvalue()


def _first_fit(fits: Callable[[int], bool], low: int, high: int) -> int:
    """The smallest index in ``low..high`` where ``fits`` holds, assuming it holds from some index on (``high`` if none is found below)."""
    while low < high:
        middle = (low + high) // 2
        if fits(middle):
            high = middle
        else:
            low = middle + 1
    return high
