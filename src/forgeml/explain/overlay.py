"""An image's heat map as a PNG: the image in gray, red where an attribution raises the explained score, blue where it
lowers it, stronger where it is larger. Pixels are blown up (nearest) so that an 8x8 digit is readable."""

from __future__ import annotations

import io

import numpy as np


def overlay_png(image: np.ndarray, heat: np.ndarray, min_side: int = 224) -> bytes:
    """PNG bytes of `heat` (H, W) over `image` ((C, H, W) or (H, W), any scale)."""
    from PIL import Image

    img = np.asarray(image, dtype=np.float64)
    gray = img.mean(0) if img.ndim == 3 else img  # (H, W)
    lo, hi = gray.min(), gray.max()
    gray = (gray - lo) / (hi - lo) if hi > lo else np.zeros_like(gray)
    h = np.asarray(heat, dtype=np.float64)
    scale = np.abs(h).max()
    h = h / scale if scale > 0 else h  # (H, W) in [-1, 1]
    base = np.repeat((0.35 + 0.4 * gray)[:, :, None], 3, axis=2)  # (H, W, 3): the image, dimmed
    colour = np.where(h[:, :, None] >= 0, np.array([1.0, 0.1, 0.1]), np.array([0.1, 0.3, 1.0]))  # red up, blue down
    alpha = np.abs(h)[:, :, None] * 0.85
    rgb = (base * (1 - alpha) + colour * alpha).clip(0, 1)
    k = max(1, -(-min_side // max(gray.shape)))  # ceil: at least min_side pixels on the longer side
    rgb = np.kron(rgb, np.ones((k, k, 1)))
    buf = io.BytesIO()
    Image.fromarray((rgb * 255).astype(np.uint8)).save(buf, format="PNG")
    return buf.getvalue()
