"""The network as Captum sees it: a function of float tensors that returns one score per class.

The network takes the contract's dict of named tensors (models/network.py) and returns a dict of outputs. Captum
perturbs and interpolates a tuple of float tensors, so each input becomes one here:

    numeric, binary   its (B, w) floats as they are (standardised number, missing flag)
    category          (B, V+1) one-hot weights over its values (the tabular encoder reads weights as well as indices)
    text              (B, T, E) token embeddings, put in place of the encoder's embedding layer's output by a hook
    image, sequence   (B, C, H, W) / (B, T, C) floats as they are; a series' `<name>.length` is held fixed
    audio             (B, 1, n_mels, frames) log-mel spectrogram, as an image: an (n_mels, frames) heat map back

Tokens and categories are discrete: there is no "half a word" to interpolate, so attributions for them are taken at
the embedding (Captum's LayerIntegratedGradients does the same with a hook on the layer). Token ids and series
lengths travel as Captum's additional_forward_args: fixed, repeated by Captum to every perturbed copy.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from forgeml.errors import RequestError


@dataclass
class Part:
    """One attributed input: the feature's name and kind, and its width in the space (category: V+1)."""

    name: str
    kind: str
    width: int = 0


def token_embedding(network: nn.Module, feature) -> nn.Embedding | None:
    """The embedding layer that reads a text feature's token ids, in the encoder that reads that feature."""
    for encoder in network.encoders.values():
        if getattr(encoder, "name", None) != feature.name:
            continue
        inner = getattr(encoder, "model", None)
        if inner is not None and hasattr(inner, "get_input_embeddings"):  # a Hugging Face model
            return inner.get_input_embeddings()
        found = [m for m in encoder.modules() if isinstance(m, nn.Embedding) and m.num_embeddings == feature.vocab_size]
        return found[0] if found else None
    return None


class Space:
    """What is attributed (float tensors, in `parts` order) and what is held fixed, and the forward over them."""

    def __init__(self, network: nn.Module, features):
        self.network, self.features = network, features
        self.parts: list[Part] = []
        self.embeddings: dict[str, nn.Embedding] = {}
        for f in features.inputs:
            if f.kind == "text":
                emb = token_embedding(network, f)
                if emb is None:
                    raise RequestError(f"input {f.name!r}: this model reads its token ids without an embedding layer that "
                                       "explanations can attribute to (a custom model); explanations support the rnn, "
                                       "transformer and pretrained text encoders")
                self.embeddings[f.name] = emb
                self.parts.append(Part(f.name, f.kind, emb.embedding_dim))
            elif f.kind in ("numeric", "binary", "category", "image", "sequence"):
                self.parts.append(Part(f.name, f.kind, f.width))
            elif f.kind == "audio":  # (B, 1, n_mels, frames): a log-mel spectrogram is attributed as a one-channel image
                self.parts.append(Part(f.name, "image", getattr(f, "width", 0)))
            else:
                raise RequestError(f"input {f.name!r} ({f.kind}): explanations support numeric, binary, category, text, "
                                   "image, sequence and audio inputs")
        self._local = threading.local()  # the embeddings to put in place, per thread (a server predicts beside)

    # ------------------------------------------------------------------ contract tensors <-> attributed tensors
    def split(self, x: dict[str, torch.Tensor]) -> tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]]:
        """The contract's input dict -> (attributed float tensors in `parts` order, fixed tensors)."""
        floats = []
        for p in self.parts:
            v = x[p.name]
            if p.kind == "category":
                v = F.one_hot(v, p.width).float()  # (B, V+1)
            elif p.kind == "text":
                with torch.no_grad():
                    v = self.embeddings[p.name](v)  # (B, T, E)
            floats.append(v.float())
        self._fixed = self.fixed_names(x)  # the same keys for every batch of one run's features
        return tuple(floats), tuple(x[k] for k in self._fixed)

    def fixed_names(self, x: dict[str, torch.Tensor]) -> list[str]:
        """The input tensors held fixed: token ids (their embeddings are attributed) and series lengths."""
        attributed = {p.name for p in self.parts if p.kind != "text"}
        return [k for k in sorted(x) if k not in attributed]

    def join(self, floats: tuple[torch.Tensor, ...], fixed: tuple[torch.Tensor, ...]) -> dict[str, torch.Tensor]:
        """Attributed and fixed tensors back to the network's input dict (token ids stay ids: the hook swaps embeddings)."""
        x = dict(zip(self._fixed, fixed))
        for p, v in zip(self.parts, floats):
            if p.kind != "text":
                x[p.name] = v
        return x

    # ------------------------------------------------------------------ the one forward Captum calls
    def scores(self, output: str):
        """forward(*floats, *fixed) -> (B, K) scores of `output`: class probabilities, label probabilities, or the
        regression value in the target's own units."""
        target = next(o for o in self.features.outputs if o.name == output)
        n = len(self.parts)

        def forward(*args: torch.Tensor) -> torch.Tensor:
            floats, fixed = args[:n], args[n:]
            self._local.embeds = {p.name: v for p, v in zip(self.parts, floats) if p.kind == "text"}
            try:
                out = self.network(self.join(floats, fixed))[output].float()
            finally:
                self._local.embeds = {}
            if target.kind == "classification":
                return out.softmax(-1)
            if target.kind == "multilabel":
                return out.sigmoid()
            return out * float(getattr(target, "std", 1.0)) + float(getattr(target, "mean", 0.0))  # (B, 1) in its units

        return forward

    @contextmanager
    def hooked(self):
        """While inside: each text embedding layer gives the embeddings Captum passed instead of its own output."""

        def swap(name):
            def hook(module, inputs, out):
                given = getattr(self._local, "embeds", {}).get(name)
                return out if given is None else given.to(out.dtype)
            return hook

        handles = [emb.register_forward_hook(swap(name)) for name, emb in self.embeddings.items()]
        try:
            yield self
        finally:
            for h in handles:
                h.remove()
