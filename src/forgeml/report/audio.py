"""The worst mistakes of a run whose one input is a sound: each clip's log-mel spectrogram (what the network read) and
an `<audio controls>` element with the clip inlined as a base64 WAV data URI (what a listener hears).

A second of 16 kHz audio is 32 KB of WAV and 43 KB as base64, so only the first MAX_CLIPS mistakes get a player and
each is cut at MAX_CLIP_S seconds; the page says so beside them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from forgeml.errors import ForgeError
from forgeml.report import plots
from forgeml.report.wav import wav_data_uri

MAX_CLIPS = 8  # players on the page (its size grows with each: about 43 KB per second of 16 kHz sound)
MAX_CLIP_S = 5.0  # seconds of each clip inlined


def audio_mistakes(feature, split, index: np.ndarray, captions: list[str]) -> dict[str, Any]:
    """The 'audio' kind of the report's mistakes section: a spectrogram grid, players, and a note on the cap."""
    spec = split.x[feature.name][np.asarray(index, dtype=np.int64)]  # (N, 1, n_mels, frames): the network's input
    specs = [s.reshape(s.shape[-2], s.shape[-1]).float().cpu().numpy() for s in spec]
    image = plots.spectrogram_grid(specs, captions, f"the {len(index)} worst mistakes: {feature.name}, log-mel "
                                                    "spectrogram as the model read it")
    raw = split.raw.data[feature.name]
    rate = int(feature.settings["sample_rate"])
    clips, unreadable = [], 0
    for i, caption in list(zip(index, captions))[:MAX_CLIPS]:
        try:
            wave = heard(feature, raw[int(i)], f"{split.raw.origin}: row {int(i)}")
        except ForgeError:  # a file gone or changed since training: its spectrogram above still shows it
            unreadable += 1
            continue
        value = raw[int(i)]
        named = f"{caption}\n{Path(value).name}" if isinstance(value, (str, Path)) else caption  # which file to look up
        clips.append((named, wav_data_uri(wave[: int(MAX_CLIP_S * rate)], rate)))
    note = (f"Players for the first {len(clips)} of these {len(index)} mistakes (at most {MAX_CLIPS}, each cut at "
            f"{MAX_CLIP_S:g} s, to keep this page small): each clip as the model heard it, resampled to {rate} Hz"
            + f", cut or padded to {feature.settings['duration']:g} s"
            + ", its loudest sample raised to 90% of full scale for listening.")
    if unreadable:
        note += f" {unreadable} clip(s) could not be read here (moved, deleted or changed since the run): no player."
    return {"kind": "audio", "image": image, "clips": clips, "note": note}


def heard(feature, value: Any, origin: str) -> np.ndarray:
    """One raw value of the column (a path, file bytes or samples) as the 1-D float32 wave the feature hands on to its
    spectrogram: decoded, mono, resampled, normalised, cut or padded."""
    return np.asarray(feature.wave(value, origin), dtype=np.float32).reshape(-1)  # (S,)
