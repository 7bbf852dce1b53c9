"""Language-model data: a text file, a folder of text files, or JSONL documents, tokenized once into
memory-mapped token arrays (uint16 when the vocabulary fits, else uint32), split contiguously into
train (the first 1 - split.val of the text) and val (the rest).

The tokenizer is fitted on the training part only. Text is read and encoded in chunks and appended
to the token file, so a corpus larger than memory is never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from forgeml.config import DataConfig
from forgeml.errors import ConfigError, DataError

CHUNK_CHARS = 1 << 22  # 4M characters per encode call


def _documents(cfg: DataConfig) -> list[Path]:
    if not cfg.path:
        raise ConfigError("data.path: not set; give a text file, a folder of .txt files, or a .jsonl file of documents")
    path = Path(cfg.path)
    if not path.exists():
        raise DataError(f"{path}: no such file or folder (relative paths are read from {Path.cwd()})")
    files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in (".txt", ".md", ".jsonl")) if path.is_dir() else [path]
    if not files:
        raise DataError(f"{path}: no .txt, .md or .jsonl files in the folder")
    return files


def _read_text(path: Path, text_key: str) -> str:
    raw = path.read_bytes()
    if b"\x00" in raw[:65536]:
        raise DataError(f"{path}: looks binary (NUL bytes), not text; give a UTF-8 text file")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc})") from None
    if path.suffix == ".jsonl":
        docs = []
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                docs.append(str(json.loads(line)[text_key]))
            except (json.JSONDecodeError, KeyError, TypeError):
                raise DataError(f"{path}: line {i + 1} is not a JSON object with a {text_key!r} field (data.text_key)") from None
        text = "\n\n".join(docs)
    return text


def read_corpus(cfg: DataConfig) -> tuple[str, str]:
    """(train text, val text): the whole corpus cut once at 1 - split.val."""
    text = "\n\n".join(_read_text(p, cfg.text_key) for p in _documents(cfg))
    if not text.strip():
        raise DataError(f"{cfg.path}: the corpus is empty")
    cut = int(len(text) * (1 - cfg.split.val))
    return text[:cut], text[cut:]


def write_tokens(tokenizer, text: str, path: Path) -> int:
    """Encode `text` in chunks and write the ids to `path`; returns the token count."""
    dtype = np.uint16 if tokenizer.vocab_size < 2**16 else np.uint32
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "wb") as fh:
        for i in range(0, len(text), CHUNK_CHARS):
            ids = np.asarray(tokenizer.encode(text[i : i + CHUNK_CHARS]), dtype=dtype)
            ids.tofile(fh)
            count += len(ids)
    tmp.replace(path)
    return count


def open_tokens(path: Path, vocab_size: int) -> np.ndarray:
    dtype = np.uint16 if vocab_size < 2**16 else np.uint32
    return np.memmap(path, dtype=dtype, mode="r")


@dataclass
class TokenData:
    tokenizer: object
    train: np.ndarray
    val: np.ndarray | None


def chunks(text: str) -> Iterator[str]:
    for i in range(0, len(text), CHUNK_CHARS):
        yield text[i : i + CHUNK_CHARS]


def prepare_corpus(cfg: DataConfig, block_size: int, cache_dir: Path, tokenizer=None) -> TokenData:
    """Fit the tokenizer on the training text (unless given), write token files under cache_dir, memory-map them."""
    from forgeml.data.tokenizers import new_tokenizer

    train_text, val_text = read_corpus(cfg)
    if tokenizer is None:
        t = cfg.text
        tokenizer = new_tokenizer(t.tokenizer, t.vocab_size, t.min_count, t.lowercase).fit(chunks(train_text))
    cache_dir.mkdir(parents=True, exist_ok=True)
    n_train = write_tokens(tokenizer, train_text, cache_dir / "train.bin")
    if n_train <= block_size:
        raise ConfigError(f"model.block_size ({block_size}) is not shorter than the training text ({n_train} tokens); "
                          "use a smaller block_size or more text")
    val = None
    if val_text:
        n_val = write_tokens(tokenizer, val_text, cache_dir / "val.bin")
        val = open_tokens(cache_dir / "val.bin", tokenizer.vocab_size) if n_val > block_size else None
    return TokenData(tokenizer, open_tokens(cache_dir / "train.bin", tokenizer.vocab_size), val)
