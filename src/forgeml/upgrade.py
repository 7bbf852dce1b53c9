"""`forgeml upgrade RUN`: a format-1 bundle rewritten in place as format 2.

The conversion is mechanical: the single-model classes of format 1 hold exactly the layers the
Network builds for the same config, under other names. So weights are renamed, never changed:

    mlp:    body.*  -> combiner.body.*           head.* -> heads.<target>.proj.*
    others: <x>.*   -> encoders.<input>.<x>.*    head.* -> heads.<target>.proj.*

and features.json's one "target" becomes the one entry of "outputs". A language model (gpt) keeps
its weights and features; only the version changes. Every file is written atomically, weights last
but one and meta.json (the version) last, so an upgrade cut short leaves a version-1 bundle that
upgrades again.
"""

from __future__ import annotations

from pathlib import Path

from forgeml.bundle import FORMAT_VERSION, Bundle, load_safetensors, save_safetensors
from forgeml.errors import BundleError
from forgeml.models.network import module_keys


def rename_weights(state: dict, model_name: str, input_name: str, target_name: str) -> dict:
    out = {}
    for key, value in state.items():
        if key.startswith("head."):
            new = f"heads.{module_keys([target_name])[target_name]}.proj.{key[len('head.'):]}"
        elif model_name == "mlp":
            new = f"combiner.{key}"
        else:
            new = f"encoders.{module_keys([input_name])[input_name]}.{key}"
        out[new] = value
    return out


def upgrade(run: str | Path) -> list[str]:
    """Convert RUN from bundle format 1 to 2 in place; returns what was done, one line each."""
    bundle = Bundle(run)
    if not bundle.file("meta.json").is_file():
        raise BundleError(f"{bundle.path}: not a run folder (no meta.json)")
    version = bundle.meta().get("format_version")
    if version == FORMAT_VERSION:
        return [f"{bundle.path}: already format {FORMAT_VERSION}; nothing to do"]
    if version != 1:
        raise BundleError(f"{bundle.path}: bundle format version {version}; forgeml upgrade converts version 1 only")
    config = bundle.read_config_dict()
    model_name = (config.get("model") or {}).get("name", "cnn")
    done = []
    if model_name == "custom":
        raise BundleError(f"{bundle.path}: a custom model's weight names are its own; retrain it with this forgeml "
                          "(forgeml train CONFIG) instead of upgrading")
    if model_name != "gpt":
        features = bundle.read_json("features.json")
        if "target" not in features or len(features.get("inputs", [])) < 1:
            raise BundleError(f"{bundle.path / 'features.json'}: not a version-1 features file (no 'target'); retrain the run")
        target, inputs = features["target"], features["inputs"]
        input_name = inputs[0]["name"]
        weights = [bundle.file("model.safetensors"), bundle.checkpoints / "best.safetensors"]
        renamed = {p: rename_weights(load_safetensors(p), model_name, input_name, target["name"]) for p in weights if p.is_file()}
        new_features = {"version": 2, "task": target["kind"], "schema": {f["name"]: f["kind"] for f in inputs},
                        "inputs": inputs, "outputs": [{**target, "weight": 1.0}]}
        bundle.write_json("features.json", new_features)
        done.append("features.json: the target is now the one output (version 2)")
        for path, state in renamed.items():
            save_safetensors(path, state)
            done.append(f"{path.relative_to(bundle.path)}: {len(state)} weights renamed to the Network's names")
        last = bundle.checkpoints / "last.pt"
        if last.is_file():
            last.unlink()  # its optimizer state is keyed by the old layout: the finished run needs it no more
            done.append("checkpoints/last.pt: removed (a format-1 training state cannot resume under format 2)")
    bundle.update_meta(format_version=FORMAT_VERSION)
    done.append(f"meta.json: format_version {FORMAT_VERSION}")
    return done
