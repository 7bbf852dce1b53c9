"""Tokenizers: character, word and byte-level BPE. Each is trained on the training split only and
saves itself as JSON inside the bundle. Id 0 is padding and id 1 the unknown token everywhere, except in
`pretrained`: a model's own tokenizer, never fitted (id 0 is still padding; unknown is the model's own)."""

from __future__ import annotations

from typing import Any

from forgeml.data.tokenizers.bpe import BPETokenizer
from forgeml.data.tokenizers.char import CharTokenizer
from forgeml.data.tokenizers.pretrained import PretrainedTokenizer
from forgeml.data.tokenizers.word import WordTokenizer

KINDS = {t.kind: t for t in (CharTokenizer, WordTokenizer, BPETokenizer, PretrainedTokenizer)}


def tokenizer_from_json(d: dict[str, Any]):
    return KINDS[d["kind"]].from_json(d)


def new_tokenizer(kind: str, vocab_size: int | None = None, min_count: int = 1, lowercase: bool = True):
    if kind == "char":
        return CharTokenizer()
    if kind == "word":
        return WordTokenizer(min_count=min_count, max_vocab=vocab_size, lowercase=lowercase)
    if kind == "bpe":
        return BPETokenizer(vocab_size=vocab_size or 2000)
    raise ValueError(f"unknown tokenizer {kind!r}")
