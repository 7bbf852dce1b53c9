"""Byte-level BPE trained on the training split with Hugging Face `tokenizers` (no unknown tokens:
every byte has a token). Saved as the tokenizer's own JSON inside features.json."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

PAD = 0
SPECIALS = ["<pad>", "<unk>"]  # ids 0 and 1, as in the other tokenizers


class BPETokenizer:
    kind = "bpe"

    def __init__(self, vocab_size: int = 2000, state: str | None = None):
        self.target_size = vocab_size
        self._tok = None
        if state is not None:
            from tokenizers import Tokenizer

            self._tok = Tokenizer.from_str(state)

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size() if self._tok is not None else self.target_size

    def fit(self, texts: Iterable[str]) -> BPETokenizer:
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

        tok = Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tok.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=self.target_size, special_tokens=SPECIALS, show_progress=False,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tok.train_from_iterator(texts, trainer=trainer)
        self._tok = tok
        return self

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)]  # Rust, in parallel

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([i for i in ids if i != PAD])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "vocab_size": self.target_size, "state": self._tok.to_str()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BPETokenizer:
        return cls(d["vocab_size"], d["state"])
