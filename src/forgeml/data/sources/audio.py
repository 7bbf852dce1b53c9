"""Audio sources: a folder of class folders of audio files, and the audio path columns of tables.

A folder `root/<class>/<clip>.wav` gives the columns {"path": each file, "label": its folder's name}; `path`
is read by the audio feature (data/features/audio.py). Files are decoded later, by the feature, in one pass.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from forgeml.data.audio.decode import audio_ext, is_audio_name
from forgeml.data.columns import Columns
from forgeml.data.sources.images import IMAGE_EXT
from forgeml.errors import DataError
from forgeml.notes import note


def _class_folders(base: Path) -> list[Path]:
    return sorted(p for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))


def _files(folder: Path) -> list[Path]:
    """The files under a class folder, hidden files and READMEs left out."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")
                  and not p.name.lower().startswith("readme"))


def is_audio_folder(root: str | Path) -> bool:
    """Whether a folder's class folders hold audio: any audio file decides, unless images outnumber them."""
    audio = images = 0
    for sub in _class_folders(Path(root)):
        for f in _files(sub):
            audio += is_audio_name(f.name)
            images += f.suffix.lower() in IMAGE_EXT
    return audio > 0 and audio >= images


def read_audio_folder(root: str, target: str = "label", column: str = "path") -> Columns:
    """Every audio file under root/<class>/ (any depth) with its class; paths are absolute, so a report or a
    prediction read from another folder still finds the files. Other files and empty class folders are noted."""
    base = Path(root)
    classes = [p.name for p in _class_folders(base)]
    if not classes:
        raise DataError(f"{root}: an audio folder needs one sub-folder per class (e.g. {root}/yes/clip1.wav)")
    paths: list[str] = []
    labels: list[str] = []
    skipped: dict[str, int] = {}
    empty: list[str] = []
    for name in classes:
        files = _files(base / name)
        audio = [str(p.resolve()) for p in files if is_audio_name(p.name)]
        for p in files:
            if not is_audio_name(p.name):
                skipped[p.suffix.lower() or p.name] = skipped.get(p.suffix.lower() or p.name, 0) + 1
        if not audio:
            empty.append(name)
        paths += audio
        labels += [name] * len(audio)
    kinds = ", ".join(sorted(audio_ext()))
    if not paths:
        raise DataError(f"{root}: no audio files ({kinds}) in its class folders")
    if skipped:
        what = ", ".join(f"{n} {ext}" for ext, n in sorted(skipped.items(), key=lambda kv: -kv[1]))
        note(f"{root}: {sum(skipped.values())} files of other types skipped ({what}); forgeml reads {kinds}: "
             "convert them (e.g. ffmpeg -i IN.m4a -ar 16000 OUT.wav) to use them")
    if empty:
        note(f"{root}: class folder(s) {', '.join(empty)} hold no audio files ({kinds}) and are not classes")
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
