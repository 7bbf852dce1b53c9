"""Image folders (one sub-folder per class) and single image files, read with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.data.columns import Columns
from forgeml.errors import DataError

IMAGE_EXT = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}
# Pillow picks a decoder by content, not by name: a ".png" that is really PostScript would run Ghostscript.
# Only these decoders are tried.
PIL_FORMATS = ("PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP")


def read_image(path: str | Path, size: tuple[int, int] | None, channels: int | None) -> np.ndarray:
    """One image file as a (C, H, W) uint8 array, converted and resized as asked."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path, formats=PIL_FORMATS) as img:
            mode = {1: "L", 3: "RGB"}.get(channels or 0) or ("L" if img.mode in ("1", "L", "I", "I;16", "F") else "RGB")
            img = img.convert(mode)
            if size is not None and img.size != (size[1], size[0]):
                img = img.resize((size[1], size[0]), Image.BILINEAR)
            arr = np.asarray(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DataError(f"{path}: cannot decode as an image ({exc}). Remove or replace the file") from None
    return arr[None] if arr.ndim == 2 else arr.transpose(2, 0, 1)


def read_image_folder(root: str, size: tuple[int, int] | None, channels: int | None, target: str = "label") -> Columns:
    base = Path(root)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: an image folder needs one sub-folder per class (e.g. {root}/cat/1.png)")
    paths, labels = [], []
    for name in classes:
        files = sorted(p for p in (base / name).rglob("*") if p.suffix.lower() in IMAGE_EXT)
        paths += files
        labels += [name] * len(files)
    if not paths:
        raise DataError(f"{root}: no image files ({', '.join(sorted(IMAGE_EXT))}) in its class folders")
    images = [read_image(p, size, channels) for p in paths]
    shapes = {im.shape for im in images}
    if len(shapes) > 1 and size is None:
        raise DataError(f"{root}: images have different shapes {sorted(shapes)[:3]}...; set data.image.size: [H, W]")
    if len(shapes) > 1:  # channels differ
        raise DataError(f"{root}: images have different channel counts; set data.image.channels: 1 or 3")
    return Columns({"image": np.stack(images), target: np.array(labels, dtype=object)}, origin=root,
                   row_names=[str(p) for p in paths])
