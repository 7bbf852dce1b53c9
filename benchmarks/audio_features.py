"""Log-mel throughput: forgeml's batched torch path against librosa clip by clip, same settings, same clips.

    PYTHONPATH=src python benchmarks/audio_features.py [--clips 3000] [--batch 256] [--repeats 3] [--threads N]

Two stages, each timed as the best of --repeats on the FSDD clips (../shared/data/spoken_digits, 8 kHz, padded or
cropped to 1 s: 40 mel bands, n_fft 256, hop 80, top_db 80: examples/spoken-digits-cnn.yaml's settings):
- spectrogram: waves already decoded in memory -> log-mel dB. forgeml: data.audio.mel.log_mel over batches of
  --batch clips (torch.stft + one matmul with the mel filters); librosa: stft, one matmul with its mel filters (built
  once, as forgeml's are: feature.melspectrogram would rebuild them per clip) and power_to_db, per clip.
- from files: file -> wave -> log-mel. forgeml: AudioFeature.spectrograms (soundfile, peak level, pad/crop, batched
  log-mel); librosa: librosa.load(sr=None) per clip, the same level and length, then the same two calls.
Printed: clips/s of each, the ratio, and the largest absolute difference between the two results (dB).
A GPU, when there is one, runs forgeml's batches too (a second line).
"""

from __future__ import annotations

import argparse
import csv
import platform
import time
from pathlib import Path

import numpy as np
import torch

from forgeml.config import load_config
from forgeml.data.audio.decode import fit_length
from forgeml.data.audio.mel import log_mel, mel_filterbank
from forgeml.data.features.audio import AudioFeature
from forgeml.training.runtime import describe_cpu

ROOT = Path(__file__).resolve().parents[1]


def best(fn, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return min(times), out



def compare(title: str, ours, ours_name: str, theirs, theirs_name: str, n: int, repeats: int) -> tuple[np.ndarray, np.ndarray]:
    """Time both sides (best of `repeats`), print clips/s, the ratio and the largest difference; return both outputs."""
    t_ours, x_ours = best(ours, repeats)
    t_lib, x_lib = best(theirs, repeats)
    print(f"\n{title}")
    print(f"  {ours_name + ':':<41}{n / t_ours:9.0f} clips/s")
    print(f"  {theirs_name + ':':<41}{n / t_lib:9.0f} clips/s   forgeml/librosa = {t_lib / t_ours:.1f}x")
    print(f"  max |forgeml - librosa| = {np.abs(x_ours - x_lib).max():.2e} dB")
    return x_ours, x_lib


def main() -> None:
    import librosa

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"{describe_cpu()}, Python {platform.python_version()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
          f"librosa {librosa.__version__}")
    a = load_config(ROOT / "examples" / "spoken-digits-cnn.yaml").data.audio
    tables = ROOT / "data" / "spoken_digits"
    paths = []
    for name in ("fsdd_train.csv", "fsdd_test.csv"):
        with open(tables / name) as f:
            paths += [str((tables / r["path"]).resolve()) for r in csv.DictReader(f)]
    paths = paths[: args.clips]
    feature = AudioFeature("path", a)
    waves = np.stack([feature.wave(p, p) for p in paths])  # (N, S): decoded, levelled, padded/cropped
    n = len(waves)
    filters = mel_filterbank(a.sample_rate, a.n_fft, a.n_mels)

    def ours(device: str = "cpu") -> np.ndarray:
        out = []
        for i in range(0, n, args.batch):
            x = torch.from_numpy(waves[i : i + args.batch]).to(device)
            out.append(log_mel(x, a.sample_rate, a.n_fft, a.hop_length, a.n_mels, a.top_db, filters).cpu())
        return torch.cat(out).numpy()

    fb = librosa.filters.mel(sr=a.sample_rate, n_fft=a.n_fft, n_mels=a.n_mels)  # built once, as forgeml's filters are

    def lib_one(w: np.ndarray) -> np.ndarray:  # feature.melspectrogram's own steps, without its per-call filterbank
        power = np.abs(librosa.stft(y=w, n_fft=a.n_fft, hop_length=a.hop_length, center=True, pad_mode="constant")) ** 2
        return librosa.power_to_db(fb @ power, top_db=a.top_db)

    def theirs() -> np.ndarray:
        return np.stack([lib_one(w) for w in waves])

    x_ours, x_lib = compare(f"spectrogram stage, {n} clips of {waves.shape[1]} samples -> {a.n_mels} mel bands of log-mel",
                            ours, f"forgeml batched (cpu, batch {args.batch})", theirs, "librosa clip by clip", n, args.repeats)
    if torch.cuda.is_available():
        ours("cuda")
        torch.cuda.synchronize()
        t_gpu, x_gpu = best(lambda: ours("cuda"), args.repeats)
        print(f"  forgeml batched (cuda):            {n / t_gpu:9.0f} clips/s   max |gpu - librosa| = {np.abs(x_gpu - x_lib).max():.2e} dB")

    array = np.array(paths, dtype=object)

    def from_files_ours() -> np.ndarray:
        return feature.spectrograms(array, device="cpu")[:, 0]

    def from_files_lib() -> np.ndarray:
        out = []
        for p in paths:
            w, sr = librosa.load(p, sr=None, mono=True)
            w = fit_length(w, int(round(a.duration * sr)), a.align)  # the kept window, then its peak to 1 (as forgeml)
            w = w / np.abs(w).max()
            out.append(lib_one(w))
        return np.stack(out)

    compare(f"from files (decode, level, pad/crop, log-mel), {n} clips", from_files_ours,
            "forgeml AudioFeature.spectrograms (cpu)", from_files_lib, "librosa.load + the same, per clip", n, args.repeats)


if __name__ == "__main__":
    main()
