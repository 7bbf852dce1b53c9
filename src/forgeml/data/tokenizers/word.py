"""Words (and punctuation marks) as tokens, with a minimum count and a maximum vocabulary."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

PAD, UNK = 0, 1
WORD = re.compile(r"\w+|[^\w\s]", re.UNICODE)


class WordTokenizer:
    kind = "word"

    def __init__(self, words: list[str] | None = None, min_count: int = 1, max_vocab: int | None = None, lowercase: bool = True):
        self.words, self.min_count, self.max_vocab, self.lowercase = words or [], min_count, max_vocab, lowercase
        self._index = {w: i + 2 for i, w in enumerate(self.words)}

    @property
    def vocab_size(self) -> int:
        return len(self.words) + 2

    def split(self, text: str) -> list[str]:
        return WORD.findall(text.lower() if self.lowercase else text)

    def fit(self, texts: Iterable[str]) -> WordTokenizer:
        counts = Counter(w for t in texts for w in self.split(t))
        kept = sorted((w for w, c in counts.items() if c >= self.min_count), key=lambda w: (-counts[w], w))
        self.words = kept[: self.max_vocab - 2] if self.max_vocab else kept
        self._index = {w: i + 2 for i, w in enumerate(self.words)}
        return self

    def encode(self, text: str) -> list[int]:
        return [self._index.get(w, UNK) for w in self.split(text)]

    def decode(self, ids: Iterable[int]) -> str:
        return " ".join(self.words[i - 2] if i >= 2 else "<unk>" for i in ids if i != PAD)

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "words": self.words, "min_count": self.min_count, "max_vocab": self.max_vocab,
                "lowercase": self.lowercase}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> WordTokenizer:
        return cls(d["words"], d["min_count"], d["max_vocab"], d["lowercase"])
