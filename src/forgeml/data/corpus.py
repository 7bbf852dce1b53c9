"""Language-model data: a text file, a folder of text files, or JSONL documents, tokenized once into
memory-mapped token arrays (uint16 when the vocabulary fits, else uint32), split contiguously into
train (the first 1 - split.val of the text) and val (the rest).

The tokenizer is fitted on the training part only. Text is read and encoded in chunks and appended
to the token file, so a corpus larger than memory is never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
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


def _file_chunks(path: Path, text_key: str) -> Iterator[str]:
    """A file's text in chunks (JSONL: its documents' text fields), never the whole file in memory."""
    try:
        with open(path, encoding="utf-8") as fh:
            if path.suffix == ".jsonl":
                for i, line in enumerate(fh):
                    if not line.strip():
                        continue
                    try:
                        yield str(json.loads(line)[text_key]) + "\n\n"
                    except (json.JSONDecodeError, KeyError, TypeError):
                        raise DataError(f"{path}: line {i + 1} is not a JSON object with a {text_key!r} field (data.text_key)") from None
                return
            while chunk := fh.read(CHUNK_CHARS):
                if "\x00" in chunk:
                    raise DataError(f"{path}: looks binary (NUL bytes), not text; give a UTF-8 text file")
                yield chunk
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}); is it a binary file?") from None


def corpus_chunks(cfg: DataConfig, part: str) -> Iterator[str]:
    """The training part (the first 1 - split.val of the corpus, by size) or the validation part, in chunks."""
    files = _documents(cfg)
    total = sum(len(chunk) for path in files for chunk in _file_chunks(path, cfg.text_key))  # a counting pass
    cut = int(total * (1 - cfg.split.val))
    seen = 0
    for path in files:
        for chunk in _file_chunks(path, cfg.text_key):
            lo, hi = seen, seen + len(chunk)
            seen = hi
            if part == "train" and lo < cut:
                yield chunk[: max(0, cut - lo)]
            elif part == "val" and hi > cut:
                yield chunk[max(0, cut - lo) :]


def write_tokens(tokenizer, chunks: Iterable[str], path: Path) -> int:
    """Encode text chunk by chunk and append the ids to `path`; returns the token count."""
    dtype = np.uint16 if tokenizer.vocab_size < 2**16 else np.uint32
    tmp = path.with_name(f".{path.name}.tmp")
    count = 0
    with open(tmp, "wb") as fh:
        for text in chunks:
            ids = np.asarray(tokenizer.encode(text), dtype=dtype)
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


def prepare_corpus(cfg: DataConfig, block_size: int, cache_dir: Path, tokenizer=None) -> TokenData:
    """Fit the tokenizer on the training text (unless given), write token files under cache_dir, memory-map them.

    Two streaming passes over the files (fit, then encode): a corpus larger than memory is never held whole."""
    from forgeml.data.tokenizers import new_tokenizer

    if not any(chunk.strip() for chunk in corpus_chunks(cfg, "train")):
        raise DataError(f"{cfg.path}: the corpus is empty")
    if tokenizer is None:
        t = cfg.text
        tokenizer = new_tokenizer(t.tokenizer, t.vocab_size, t.min_count, t.lowercase).fit(corpus_chunks(cfg, "train"))
    cache_dir.mkdir(parents=True, exist_ok=True)
    n_train = write_tokens(tokenizer, corpus_chunks(cfg, "train"), cache_dir / "train.bin")
    if n_train <= block_size:
        raise ConfigError(f"model.block_size ({block_size}) is not shorter than the training text ({n_train} tokens); "
                          "use a smaller block_size or more text")
    val = None
    if cfg.split.val > 0:
        n_val = write_tokens(tokenizer, corpus_chunks(cfg, "val"), cache_dir / "val.bin")
        val = open_tokens(cache_dir / "val.bin", tokenizer.vocab_size) if n_val > block_size else None
    return TokenData(tokenizer, open_tokens(cache_dir / "train.bin", tokenizer.vocab_size), val)
