"""A language model's one input and one output, fitted on a text corpus (data/corpus.py):

- `CorpusText` (input kind `corpus`): the tokenizer fitted on the training text and the context length;
  text in, token ids (B, T) out, T at most block_size (a longer prompt keeps its last block_size tokens).
- `NextToken` (output kind `next_token`): logits over the vocabulary at every position (B, T, V); decoded,
  the most likely next token after a prompt and its probability.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from forgeml.data.tokenizers import tokenizer_from_json
from forgeml.errors import RequestError

TOP = 5  # next tokens shown with their probabilities when a prompt is decoded


class CorpusText:
    kind = "corpus"

    def __init__(self, name: str, tokenizer, block_size: int):
        self.name, self.tokenizer, self.block_size = name, tokenizer, block_size

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    def encode(self, text: str) -> list[int]:
        """Token ids of a prompt; an empty one starts a new line."""
        ids = self.tokenizer.encode(text) if text else []
        return ids or self.tokenizer.encode("\n") or [1]

    def transform(self, values: np.ndarray, origin: str = "") -> np.ndarray:
        """Prompts (one per row) as token ids (N, T): each its last T <= block_size tokens. Rows must encode to the
        same length to share a tensor, so predict() sends prompts one at a time."""
        rows = [self.encode(str(v))[-self.block_size :] for v in values]
        if len({len(r) for r in rows}) > 1:
            raise RequestError(f"{origin}: prompts of different token lengths cannot share one tensor; send them one at a time")
        return np.asarray(rows, dtype=np.int64)

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "block_size": self.block_size, "vocab_size": self.vocab_size,
                "tokenizer": self.tokenizer.to_json()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CorpusText:
        return cls(d["name"], tokenizer_from_json(d["tokenizer"]), d["block_size"])


class NextToken:
    kind = "next_token"

    def __init__(self, name: str, tokenizer):
        self.name, self.tokenizer = name, tokenizer

    @property
    def n_outputs(self) -> int:
        return self.tokenizer.vocab_size

    def decode_rows(self, logits) -> list[dict[str, Any]]:
        """Per row, the next token after its last position: {token, probability, top: {token: p}}."""
        last = logits[:, -1, :] if logits.dim() == 3 else logits  # (B, V)
        probs = last.float().softmax(-1)
        top_p, top_i = probs.topk(min(TOP, probs.shape[-1]), dim=-1)  # (B, TOP)
        out = []
        for p, i in zip(top_p.tolist(), top_i.tolist()):
            pieces = [self.tokenizer.decode([t]) for t in i]
            out.append({"token": pieces[0], "probability": p[0], "top": dict(zip(pieces, p))})
        return out

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "kind": self.kind, "vocab_size": self.n_outputs}

    @classmethod
    def from_json(cls, d: dict[str, Any], tokenizer=None) -> NextToken:
        return cls(d["name"], tokenizer)
