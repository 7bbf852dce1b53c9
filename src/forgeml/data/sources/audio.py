"""Audio sources: a folder of class folders of audio files, and the audio path columns of tables.

A folder `root/<class>/<clip>.wav` gives the columns {"path": each file, "label": its folder's name}; `path`
is read by the audio feature (data/features/audio.py). Files are decoded later, by the feature, in one pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.data.audio.decode import AUDIO_EXT
from forgeml.data.columns import Columns
from forgeml.errors import DataError


def is_audio_folder(root: str | Path) -> bool:
    """Whether a folder's class folders hold audio files (and no images): the first file found decides."""
    base = Path(root)
    for sub in sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for f in sorted(sub.rglob("*")):
            if f.is_file() and not f.name.startswith("."):
                return f.suffix.lower() in AUDIO_EXT
    return False


def read_audio_folder(root: str, target: str = "label", column: str = "path") -> Columns:
    base = Path(root)
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not classes:
        raise DataError(f"{root}: an audio folder needs one sub-folder per class (e.g. {root}/yes/clip1.wav)")
    paths: list[str] = []
    labels: list[str] = []
    for name in classes:
        files = sorted(str(p) for p in (base / name).rglob("*") if p.suffix.lower() in AUDIO_EXT and p.is_file())
        paths += files
        labels += [name] * len(files)
    if not paths:
        raise DataError(f"{root}: no audio files ({', '.join(sorted(AUDIO_EXT))}) in its class folders")
    return Columns({column: np.array(paths, dtype=object), target: np.array(labels, dtype=object)}, origin=root,
                   row_names=paths)


def resolve_audio_paths(cols: Columns, table: str, declared: dict[str, str]) -> Columns:
    """Relative paths in a table's audio columns (declared `audio` in data.features, or every cell a .wav/.flac/.ogg
    name) are read from the table's folder, wherever forgeml runs."""
    from forgeml.data.features.audio import looks_like_audio

    folder = Path(table).parent
    for name, values in cols.data.items():
        if declared.get(name) == "audio" or (name not in declared and looks_like_audio(values)):
            cols.data[name] = np.array([str(folder / v.strip()) if isinstance(v, str) and v.strip() and not Path(v.strip()).is_absolute()
                                        else v for v in values], dtype=object)
    return cols
