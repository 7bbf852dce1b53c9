"""The run folder: the one contract between stages. Every later stage reads only this folder.

    runs/<name>/
      meta.json            format version, status (running/interrupted/complete), timings, hardware
      config.yaml          the resolved config (every default filled in)
      model.safetensors    weights (never pickle: loading a bundle must not run code)
      features.json        fitted preprocessing: input schema, statistics, vocabularies, label names
      metrics.json         final metrics per split, with the step they were taken at
      history.jsonl        one line per logged step / evaluation
      checkpoints/         last.pt (full training state) + best.safetensors

A compressed variant that runs only in ONNX Runtime (forgeml compress RUN --quantize int8 -> RUN-int8) has
model.onnx in place of model.safetensors and says so in meta.json (`"runtime": "onnx"`).
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from forgeml.atomic import atomic_write, write_json, write_text
from forgeml.errors import BundleError

FORMAT_VERSION = 2  # 2: the Network's weight names and features.json with inputs and outputs (docs/contract.md)
REQUIRED = ("meta.json", "config.yaml", "model.safetensors", "features.json")
ONNX_RUNTIME = "onnx"  # meta.json "runtime" of a bundle whose model is model.onnx alone (an int8 variant)


class Bundle:
    """A run folder on disk. ``Bundle.open`` checks it; ``Bundle(path)`` is for writing one."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    # ------------------------------------------------------------------ opening
    @classmethod
    def open(cls, path: str | Path, require_weights: bool = True) -> Bundle:
        bundle = cls(path)
        if not bundle.path.is_dir():
            raise BundleError(f"{bundle.path}: no such run folder. Train one first: forgeml train CONFIG")
        needed = REQUIRED if require_weights else tuple(f for f in REQUIRED if f != "model.safetensors")
        if require_weights and bundle.onnx_only:
            needed = tuple("model.onnx" if f == "model.safetensors" else f for f in REQUIRED)
        missing = [f for f in needed if not (bundle.path / f).is_file()]
        if missing:
            status = bundle.meta().get("status") if (bundle.path / "meta.json").is_file() else None
            why = (f" The run is '{status}': resume it with forgeml train --resume {bundle.path}"
                   if status in ("running", "interrupted") else " The folder is incomplete or damaged; retrain or copy it again.")
            raise BundleError(f"{bundle.path}: missing {', '.join(missing)}.{why}")
        version = bundle.meta().get("format_version")
        if version == 1:
            raise BundleError(f"{bundle.path}: bundle format version 1 (forgeml before the one model shape); this forgeml "
                              f"reads {FORMAT_VERSION}. Convert it in place with: forgeml upgrade {bundle.path}")
        if version != FORMAT_VERSION:
            raise BundleError(f"{bundle.path}: bundle format version {version}, this forgeml reads {FORMAT_VERSION}")
        return bundle

    # ------------------------------------------------------------------ paths
    def file(self, name: str) -> Path:
        return self.path / name

    @property
    def onnx_only(self) -> bool:
        """The model is model.onnx alone (no PyTorch weights): it runs in ONNX Runtime."""
        try:
            return self.file("meta.json").is_file() and self.meta().get("runtime") == ONNX_RUNTIME
        except BundleError:
            return False

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    # ------------------------------------------------------------------ json / yaml
    def read_json(self, name: str) -> Any:
        path = self.file(name)
        try:
            return json.loads(path.read_text())
        except FileNotFoundError:
            raise BundleError(f"{path}: missing from the run folder") from None
        except json.JSONDecodeError as exc:
            raise BundleError(f"{path}: not valid JSON ({exc}); the file is damaged") from None

    def write_json(self, name: str, obj: Any) -> None:
        write_json(self.file(name), obj)

    def merge_metrics(self, result: dict[str, Any]) -> None:
        """Add or replace splits in metrics.json, keeping the others."""
        merged = self.read_json("metrics.json") if self.file("metrics.json").is_file() else {}
        merged.update(result)
        self.write_json("metrics.json", merged)

    def meta(self) -> dict[str, Any]:
        return self.read_json("meta.json")

    def update_meta(self, **fields: Any) -> None:
        meta = self.meta() if self.file("meta.json").is_file() else {"format_version": FORMAT_VERSION}
        meta.update(fields)
        meta["updated"] = time.strftime("%Y-%m-%dT%H:%M:%S")
        self.write_json("meta.json", meta)

    def read_config_dict(self) -> dict[str, Any]:
        path = self.file("config.yaml")
        if not path.is_file():
            raise BundleError(f"{path}: missing from the run folder")
        return yaml.safe_load(path.read_text())

    def write_config(self, yaml_text: str) -> None:
        write_text(self.file("config.yaml"), yaml_text)

    # ------------------------------------------------------------------ history
    def append_history(self, record: dict[str, Any]) -> None:
        with open(self.file("history.jsonl"), "a") as fh:
            fh.write(json.dumps(record) + "\n")

    def read_history(self) -> list[dict[str, Any]]:
        path = self.file("history.jsonl")
        if not path.is_file():
            return []
        rows = []
        for line in path.read_text().splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue  # a line cut by a crash
        return rows

    def truncate_history(self, step: int) -> None:
        """Drop lines logged after `step` (work redone after a resume is logged again)."""
        rows = [r for r in self.read_history() if r.get("step", 0) <= step]
        write_text(self.file("history.jsonl"), "".join(json.dumps(r) + "\n" for r in rows))

    # ------------------------------------------------------------------ weights
    def save_weights(self, state_dict: dict[str, torch.Tensor], name: str = "model.safetensors") -> None:
        save_safetensors(self.file(name), state_dict)

    def load_weights(self, name: str = "model.safetensors") -> dict[str, torch.Tensor]:
        return load_safetensors(self.file(name))


def save_safetensors(path: Path, state_dict: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    # safetensors refuses shared storage (tied weights): give each name its own contiguous copy.
    tensors = {k: v.detach().to("cpu").contiguous().clone() for k, v in state_dict.items()}
    atomic_write(path, lambda tmp: save_file(tensors, str(tmp), metadata={"format": "pt"}))


def load_safetensors(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    if not path.is_file():
        raise BundleError(f"{path}: weights file missing")
    try:
        return load_file(str(path))
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise BundleError(f"{path}: cannot read weights ({exc}); the file is damaged") from None
