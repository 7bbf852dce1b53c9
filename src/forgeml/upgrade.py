"""`forgeml upgrade RUN`: a bundle of an older layout rewritten in place in the current one (format 2).

The conversion is mechanical: the single-model classes of format 1 hold exactly the layers the
Network builds for the same config, under other names. So weights are renamed, never changed:

    mlp:    body.*  -> combiner.body.*           head.* -> heads.<target>.proj.*
    others: <x>.*   -> encoders.<input>.<x>.*    head.* -> heads.<target>.proj.*
    gpt:    <x>.*   -> encoders.text.<x>.*       lm_head.weight -> heads.next_token.proj.weight

and features.json's one "target" becomes the one entry of "outputs" (a GPT's tokenizer and context
length become its `corpus` input, the vocabulary its `next_token` output). A GPT trained before it
moved onto the Network (format 2 in meta.json, features.json version 1) is upgraded the same way, its
checkpoints/last.pt too (same parameters in the same order: the run still resumes exactly). Every
file is written atomically, weights last but one and meta.json (the version) last, so an upgrade cut
short leaves a bundle that upgrades again.
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


def rename_gpt_weights(state: dict) -> dict:
    """Old GPT names to the Network's; a name already renamed (an upgrade cut short) stays as it is."""
    def new(k: str) -> str:
        if k.startswith(("encoders.", "heads.")):
            return k
        return "heads.next_token.proj.weight" if k == "lm_head.weight" else f"encoders.text.{k}"

    return {new(k): v for k, v in state.items()}


def gpt_features(old: dict) -> dict:
    """A GPT's version-1 features.json ({tokenizer, block_size, vocab_size}) as version 2's corpus input and next_token output."""
    corpus = {"name": "text", "kind": "corpus", "block_size": old["block_size"], "vocab_size": old["vocab_size"],
              "tokenizer": old["tokenizer"]}
    return {"version": 2, "task": "language_model", "schema": {"text": "corpus"}, "inputs": [corpus],
            "outputs": [{"name": "next_token", "kind": "next_token", "vocab_size": old["vocab_size"], "weight": 1.0}]}


def _upgrade_gpt(bundle: Bundle) -> list[str]:
    """Weights and the training state first, features.json (the marker of a finished upgrade) last."""
    from forgeml.training.checkpoint import load_checkpoint, save_checkpoint

    features = bundle.read_json("features.json")
    if features.get("version") == 2:
        return []
    if "tokenizer" not in features:
        raise BundleError(f"{bundle.path / 'features.json'}: not a language model's features file (no 'tokenizer'); retrain the run")
    done = []
    for path in (bundle.file("model.safetensors"), bundle.checkpoints / "best.safetensors"):
        if path.is_file():
            state = rename_gpt_weights(load_safetensors(path))
            save_safetensors(path, state)
            done.append(f"{path.relative_to(bundle.path)}: {len(state)} weights renamed to the Network's names")
    last = bundle.checkpoints / "last.pt"
    if last.is_file():
        state = load_checkpoint(last)
        state["model"] = rename_gpt_weights(state["model"])  # the optimizer's state is by parameter order, which is unchanged
        save_checkpoint(last, state)
        done.append("checkpoints/last.pt: model weights renamed (the run still resumes exactly)")
    bundle.write_json("features.json", gpt_features(features))
    done.append("features.json: the tokenizer is now the corpus input 'text', the vocabulary the next_token output (version 2)")
    return done


def upgrade(run: str | Path) -> list[str]:
    """Convert RUN in place to the current layout (format 2); returns what was done, one line each."""
    bundle = Bundle(run)
    if not bundle.file("meta.json").is_file():
        raise BundleError(f"{bundle.path}: not a run folder (no meta.json)")
    version = bundle.meta().get("format_version")
    config = bundle.read_config_dict()
    if version == FORMAT_VERSION and (config.get("model") or {}).get("name") == "gpt":
        done = _upgrade_gpt(bundle)  # a GPT of format 2 from before it moved onto the Network
        if done:
            return done
    if version == FORMAT_VERSION:
        return [f"{bundle.path}: already format {FORMAT_VERSION}; nothing to do"]
    if version != 1:
        raise BundleError(f"{bundle.path}: bundle format version {version}; forgeml upgrade converts version 1 only")
    model_name = (config.get("model") or {}).get("name", "cnn")
    done = []
    if model_name == "custom":
        raise BundleError(f"{bundle.path}: a custom model's weight names are its own; retrain it with this forgeml "
                          "(forgeml train CONFIG) instead of upgrading")
    if model_name == "gpt":
        done += _upgrade_gpt(bundle)
    else:
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
