"""A tiny real audio run for the report and serving tests: the 60 Free Spoken Digit Dataset clips shipped in
data/spoken_digits/clips (8 kHz WAV, digits 0-9, speakers jackson and theo, takes 0, 5 and 6) as a folder of class
folders, trained for a few steps once per test session."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

import forgeml

ROOT = Path(__file__).resolve().parents[1]
CLIPS = [ROOT / "data" / "spoken_digits" / "clips", ROOT.parent / "shared" / "data" / "spoken_digits" / "recordings"]
RATE, SECONDS = 8000, 0.4  # 0.4 s at 8 kHz: 3,200 samples, 41 frames of 24 mel bands
_trained: dict[str, Path] = {}


def clip(digit: str = "1", speaker: str = "jackson", take: int = 0) -> Path:
    """One real recording, by digit, speaker (jackson, theo) and take (0, 5, 6)."""
    for folder in CLIPS:
        if (folder / f"{digit}_{speaker}_{take}.wav").is_file():
            return folder / f"{digit}_{speaker}_{take}.wav"
    pytest.skip(f"the Free Spoken Digit Dataset clips are not here ({CLIPS[0]})")


def audio_folder(root: Path) -> Path:
    """root/digits/<digit>/<clip>.wav: the 60 shipped clips, 6 per digit."""
    folder = root / "digits"
    if not folder.is_dir():
        partial = root / "digits.partial"  # renamed when whole: a skip half-way leaves no half folder behind
        shutil.rmtree(partial, ignore_errors=True)
        for d in "0123456789":
            (partial / d).mkdir(parents=True)
            for speaker in ("jackson", "theo"):
                for take in (0, 5, 6):
                    shutil.copy(clip(d, speaker, take), partial / d)
        partial.rename(folder)
    return folder


def audio_run(root: Path) -> Path:
    """The run folder of a tiny spoken-digits CNN (trained once per session under root; its report explains the
    worst mistakes when Captum is installed)."""
    key = str(root)
    if key not in _trained:
        config = {
            "name": "spoken-tiny",
            "data": {"source": "audio_folder", "path": str(audio_folder(root)), "split": {"val": 0.2, "test": 0.3, "seed": 0},
                     "audio": {"sample_rate": RATE, "duration": SECONDS, "n_fft": 256, "hop_length": 80, "n_mels": 24}},
            "model": {"name": "cnn", "blocks": [{"channels": 8, "kernel": 3, "padding": 1, "pool": 2}], "hidden": [16]},
            "train": {"max_steps": 6, "batch_size": 8, "lr": 0.003, "progress": False, "tensorboard": False},
            "eval": {"explain": True},
            "runs_dir": str(root / "audio-runs"),
        }
        _trained[key] = forgeml.train(config)
    return _trained[key]
