"""Text columns: token ids from a tokenizer fitted on the training texts, padded with 0 (and cut at
max_length). Rows are padded only to the longest text among them; the batcher then buckets texts
of similar length so that little compute goes to padding."""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.data.tokenizers import new_tokenizer, tokenizer_from_json

UNK = 1


def as_texts(values: np.ndarray) -> list[str]:
    return ["" if v is None or (isinstance(v, float) and np.isnan(v)) else str(v) for v in values]


class TextFeature:
    kind = "text"

    def __init__(self, name: str, tokenizer=None, max_length: int = 128, settings: dict[str, Any] | None = None,
                 kept: bool = False):
        self.name, self.tokenizer, self.max_length = name, tokenizer, max_length
        self.settings = settings or {}
        self.kept = kept  # the tokenizer was given (a pretrained model's, or a run's under model.init_from), never fitted here

    @property
    def width(self) -> int:
        return self.max_length

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def fit(self, values: np.ndarray, origin: str = "") -> TextFeature:
        if self.kept:
            return self
        s = self.settings
        self.tokenizer = new_tokenizer(s.get("tokenizer", "word"), s.get("vocab_size"), s.get("min_count", 1),
                                       s.get("lowercase", True)).fit(as_texts(values))
        return self

    def encode(self, values: np.ndarray) -> list[list[int]]:
        texts = as_texts(values)
        batch = getattr(self.tokenizer, "encode_batch", None)
        ids = batch(texts) if batch else [self.tokenizer.encode(t) for t in texts]
        return [(row[: self.max_length] or [UNK]) for row in ids]  # an empty text is one unknown token, never zero

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        ids = self.encode(values)
        out = np.zeros((len(ids), max(len(r) for r in ids)), dtype=np.int64)  # (N, longest): 0 is padding
        for i, row in enumerate(ids):
            out[i, : len(row)] = row
        return out

    def to_json(self) -> dict[str, Any]:
        kept = {"kept": True} if self.kept else {}  # only when true: features.json of other runs is as before
        return {"kind": self.kind, "name": self.name, "max_length": self.max_length, **kept, "tokenizer": self.tokenizer.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> TextFeature:
        return cls(d["name"], tokenizer_from_json(d["tokenizer"]), d["max_length"], kept=bool(d.get("kept")))


def kept_tokenizers(features) -> dict[str, Any]:
    """Column name -> tokenizer of the text inputs whose tokenizer was given, not fitted: what a refit of the run's
    data (evaluate, resume, report, compress) must be given again to reproduce features.json."""
    return {f.name: f.tokenizer for f in features.inputs if f.kind == "text" and getattr(f, "kept", False)}
