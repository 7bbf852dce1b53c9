"""A pretrained model's own tokenizer: the Hugging Face `tokenizers` state of its folder's tokenizer.json,
never fitted. Its JSON state is saved in features.json, so a bundle needs no source folder.

The contract of every forgeml tokenizer holds where it can: id 0 is padding (the text encoders mask
`ids != 0`), so a tokenizer whose pad token is not id 0 (RoBERTa's <pad> is 1) or that has none (GPT-2) is
refused, not remapped: remapping would also mean permuting the model's embedding rows. Id 1 is not
"unknown" here: the model's own [UNK] is used (BERT: 100). The model's special tokens are added by the
tokenizer's post-processor ([CLS] text [SEP] for BERT; one is added when tokenizer.json has none and
knows [CLS] and [SEP]), and texts are truncated to max_length tokens,
special tokens included; padding is forgeml's (per batch), never the tokenizer's fixed length.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from forgeml.errors import ConfigError

PAD = 0
PAD_NAMES = ("[PAD]", "<pad>", "<PAD>")


class PretrainedTokenizer:
    kind = "pretrained"

    def __init__(self, state: str, max_length: int, source: str = ""):
        from tokenizers import Tokenizer

        self.max_length, self.source = int(max_length), source
        self._tok = Tokenizer.from_str(state)
        self._tok.no_padding()  # batches are padded by forgeml, to the longest text of each batch
        self._tok.enable_truncation(self.max_length)

    @classmethod
    def from_folder(cls, folder: str | Path, max_length: int) -> PretrainedTokenizer:
        """The tokenizer of a model folder (its tokenizer.json); a ConfigError when it is missing or breaks the
        id-0-is-padding contract."""
        folder = Path(folder)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise ConfigError(f"{folder}: no tokenizer.json; forgeml reads a pretrained model's tokenizer from its "
                              "Hugging Face tokenizer.json (save one with AutoTokenizer.from_pretrained(...).save_pretrained(folder))")
        try:
            state = path.read_text(encoding="utf-8")
            tok = cls(state, max_length, str(folder))
        except Exception as exc:  # the Rust library's own message says what is wrong
            raise ConfigError(f"{path}: not a Hugging Face tokenizer file ({str(exc).splitlines()[0]})") from None
        if tok._tok.post_processor is None:  # a bare tokenizer.json: BERT's [CLS] text [SEP], as the model was trained
            cls_id, sep_id = tok._tok.token_to_id("[CLS]"), tok._tok.token_to_id("[SEP]")
            if cls_id is not None and sep_id is not None:
                from tokenizers import processors

                tok._tok.post_processor = processors.TemplateProcessing(
                    single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls_id), ("[SEP]", sep_id)])
        pad_name = _pad_token(folder, json.loads(state))
        pad_id = tok._tok.token_to_id(pad_name) if pad_name else None
        if pad_id is None:
            raise ConfigError(f"{path}: the tokenizer has no padding token ({' / '.join(PAD_NAMES)}); forgeml pads with id 0 and "
                              "needs a model whose pad token is id 0 (BERT-style models such as MiniLM)")
        if pad_id != PAD:
            raise ConfigError(f"{path}: the padding token {pad_name!r} is id {pad_id}, but forgeml's text contract is id 0 = "
                              "padding; this tokenizer is refused rather than remapped (remapping would permute the model's "
                              "embedding). Use a model whose pad token is id 0 (BERT, MiniLM, DistilBERT, ELECTRA)")
        return tok

    @property
    def vocab_size(self) -> int:
        return self._tok.get_vocab_size(with_added_tokens=True)

    def fit(self, texts: Iterable[str]) -> PretrainedTokenizer:
        return self  # never trained: it is the model's

    def encode(self, text: str) -> list[int]:
        return self._tok.encode(text).ids

    def encode_batch(self, texts: list[str]) -> list[list[int]]:
        return [e.ids for e in self._tok.encode_batch(texts)]  # Rust, in parallel

    def decode(self, ids: Iterable[int]) -> str:
        return self._tok.decode([int(i) for i in ids if i != PAD])

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "max_length": self.max_length, "source": self.source, "state": self._tok.to_str()}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> PretrainedTokenizer:
        return cls(d["state"], d["max_length"], d.get("source", ""))


def _pad_token(folder: Path, state: dict[str, Any]) -> str | None:
    """The pad token's text: special_tokens_map.json / tokenizer_config.json, the tokenizer's padding section, or a usual name."""
    for name in ("special_tokens_map.json", "tokenizer_config.json"):
        path = folder / name
        if path.is_file():
            try:
                pad = json.loads(path.read_text()).get("pad_token")
            except (json.JSONDecodeError, AttributeError):
                continue
            pad = pad.get("content") if isinstance(pad, dict) else pad
            if isinstance(pad, str):
                return pad
    padding = state.get("padding") or {}
    if padding.get("pad_token"):
        return padding["pad_token"]
    vocab = {t.get("content") for t in state.get("added_tokens") or []}
    return next((n for n in PAD_NAMES if n in vocab), None)
