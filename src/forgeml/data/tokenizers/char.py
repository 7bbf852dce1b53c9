"""Characters as tokens: the vocabulary is every character of the training text."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PAD, UNK = 0, 1


class CharTokenizer:
    kind = "char"

    def __init__(self, chars: list[str] | None = None):
        self.chars = chars or []
        self._index = {c: i + 2 for i, c in enumerate(self.chars)}

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + 2

    def fit(self, texts: Iterable[str]) -> CharTokenizer:
        seen: set[str] = set()
        for t in texts:
            seen.update(t)
        self.chars = sorted(seen)
        self._index = {c: i + 2 for i, c in enumerate(self.chars)}
        return self

    def encode(self, text: str) -> list[int]:
        get = self._index.get
        return [get(c, UNK) for c in text]  # a character never seen in training is UNK, never a crash

    def decode(self, ids: Iterable[int]) -> str:
        chars = self.chars
        return "".join(chars[i - 2] if i >= 2 else ("" if i == PAD else "\ufffd") for i in ids)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "chars": self.chars}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> CharTokenizer:
        return cls(d["chars"])
