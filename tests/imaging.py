"""Image-regression helper: compare a rendered image against a reference kept in tests/images.

Set TWIN_UPDATE_IMAGES=1 to (re)write references after an intended change of look.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

IMAGES = Path(__file__).resolve().parent / "images"


def compare_to_reference(image: np.ndarray, name: str, *, max_mean_diff: float = 2.0, max_changed: float = 0.01) -> None:
    """Fail if ``image`` (H, W, 3 uint8) differs from ``images/<name>.png`` beyond tolerance.

    ``max_mean_diff``: mean absolute difference per channel (0-255); ``max_changed``: share of
    pixels differing by more than 40 in any channel. Tolerances absorb anti-aliasing noise.
    """
    reference = IMAGES / f"{name}.png"
    if os.environ.get("TWIN_UPDATE_IMAGES") == "1":
        IMAGES.mkdir(exist_ok=True)
        Image.fromarray(image).save(reference)
    if not reference.exists():
        raise AssertionError(f"no reference image {reference}; render it with TWIN_UPDATE_IMAGES=1 and check it by eye")
    expected = np.asarray(Image.open(reference).convert("RGB"))
    assert expected.shape == image.shape, f"{name}: size {image.shape} != reference {expected.shape}"
    diff = np.abs(expected.astype(np.int16) - image.astype(np.int16))
    mean = float(diff.mean())
    changed = float((diff.max(axis=2) > 40).mean())
    if mean > max_mean_diff or changed > max_changed:
        Image.fromarray(image).save(IMAGES / f"{name}.actual.png")
        raise AssertionError(f"{name}: differs from reference (mean diff {mean:.2f}, {changed:.2%} pixels changed); wrote {name}.actual.png")


def hue_share(image: np.ndarray, hue_deg: float, width: float = 12.0, min_saturation: float = 0.45) -> float:
    """Share of pixels whose hue is within ``width`` degrees of ``hue_deg`` (saturated ones only)."""
    rgb = image.reshape(-1, 3).astype(np.float64) / 255.0
    mx, mn = rgb.max(axis=1), rgb.min(axis=1)
    delta = mx - mn
    saturation = np.where(mx > 0, delta / np.maximum(mx, 1e-9), 0)
    r, g, b = rgb.T
    safe = np.maximum(delta, 1e-9)
    hue = np.select([mx == r, mx == g], [((g - b) / safe) % 6, (b - r) / safe + 2], (r - g) / safe + 4) * 60.0
    distance = np.abs((hue - hue_deg + 180.0) % 360.0 - 180.0)
    return float(((distance <= width) & (saturation >= min_saturation) & (mx > 0.25)).mean())
