"""Language-model data: a text file, a folder of text files, or JSONL documents, tokenized once into
memory-mapped token arrays (uint16 when the vocabulary fits, else uint32), split contiguously into
train (the first 1 - split.val of the text) and val (the rest).

The tokenizer is fitted on the training part only. Text is read and encoded in chunks and appended
to the token file, so a corpus larger than memory is never held whole.
"""

from __future__ import annotations

import json
import shutil
import tempfile
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


def split_point(cfg: DataConfig) -> int:
    """Characters in the training part: the first 1 - split.val of the corpus (one counting pass)."""
    total = sum(len(chunk) for path in _documents(cfg) for chunk in _file_chunks(path, cfg.text_key))
    return int(total * (1 - cfg.split.val))


def corpus_chunks(cfg: DataConfig, part: str, cut: int) -> Iterator[str]:
    """The training part (characters before `cut`) or the validation part (the rest), in chunks."""
    seen = 0
    for path in _documents(cfg):
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


def _open_token_files(folder: Path, tokenizer) -> TokenData:
    val = folder / "val.bin"
    return TokenData(tokenizer, open_tokens(folder / "train.bin", tokenizer.vocab_size),
                     open_tokens(val, tokenizer.vocab_size) if val.is_file() else None)


INPUT, OUTPUT = "text", "next_token"  # a language model's one input and one output, by name (docs/contract.md)


class CorpusData:
    """A tokenized corpus as a run's data: its fitted features (the tokenizer, the context length), the
    train and val token streams, and the folder holding them (a staging folder, then RUN/data)."""

    def __init__(self, tokens: TokenData, block_size: int, folder: Path):
        from forgeml.data.features.corpus import CorpusText, NextToken
        from forgeml.data.featureset import FeatureSet

        self.tokens, self.folder = tokens, folder
        self.features = FeatureSet([CorpusText(INPUT, tokens.tokenizer, block_size)], [NextToken(OUTPUT, tokens.tokenizer)])

    @classmethod
    def stage(cls, cfg: DataConfig, block_size: int, run_dir: Path, tokenizer=None) -> CorpusData:
        """Tokenize the corpus into a temporary folder beside the run: everything that can fail on bad input (an
        empty or binary corpus, a block longer than the text) happens here, before any run folder exists.
        `tokenizer`: a given one (a run's, under model.init_from) instead of one fitted on this text."""
        run_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.tokens-", dir=run_dir.parent))
        try:
            return cls(prepare_corpus(cfg, block_size, staging, tokenizer), block_size, staging)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise

    @classmethod
    def open(cls, folder: Path, features) -> CorpusData:
        """The memory-mapped train.bin (and val.bin, when the held-out text fills a window) of a run."""
        corpus = features.inputs[0]
        if not (folder / "train.bin").is_file():
            raise DataError(f"{folder}: the tokenized corpus is missing; start a new run")
        return cls(_open_token_files(folder, corpus.tokenizer), corpus.block_size, folder)

    def move_into(self, run_dir: Path) -> None:
        """The staged token files become RUN/data (a rename on the same file system)."""
        self.folder.rename(run_dir / "data")
        self.folder = run_dir / "data"
        self.tokens = _open_token_files(self.folder, self.tokens.tokenizer)

    def discard(self) -> None:
        """Remove a staging folder that never moved into a run."""
        if self.folder.name != "data":
            shutil.rmtree(self.folder, ignore_errors=True)

    def sizes(self) -> dict[str, int]:
        return {"train_tokens": len(self.tokens.train), "val_tokens": len(self.tokens.val) if self.tokens.val is not None else 0}


def prepare_corpus(cfg: DataConfig, block_size: int, cache_dir: Path, tokenizer=None) -> TokenData:
    """Fit the tokenizer on the training text (or keep the one given), write token files under cache_dir, memory-map them.

    Streaming passes over the files (count, fit, encode train, encode val): a corpus larger than memory is
    never held whole. A held-out part too short to fill one window is not kept (the run has no val)."""
    from forgeml.data.tokenizers import new_tokenizer

    cut = split_point(cfg)
    if not any(chunk.strip() for chunk in corpus_chunks(cfg, "train", cut)):
        raise DataError(f"{cfg.path}: the corpus is empty")
    t = cfg.text
    if tokenizer is None:
        tokenizer = new_tokenizer(t.tokenizer, t.vocab_size, t.min_count, t.lowercase).fit(corpus_chunks(cfg, "train", cut))
    cache_dir.mkdir(parents=True, exist_ok=True)
    n_train = write_tokens(tokenizer, corpus_chunks(cfg, "train", cut), cache_dir / "train.bin")
    if n_train <= block_size:
        raise ConfigError(f"model.block_size ({block_size}) is not shorter than the training text ({n_train} tokens); "
                          "use a smaller block_size or more text")
    val = None
    if cfg.split.val > 0:
        n_val = write_tokens(tokenizer, corpus_chunks(cfg, "val", cut), cache_dir / "val.bin")
        if n_val > block_size:
            val = open_tokens(cache_dir / "val.bin", tokenizer.vocab_size)
        else:
            (cache_dir / "val.bin").unlink()  # too short for one window: no val file, so a resume sees none either
    return TokenData(tokenizer, open_tokens(cache_dir / "train.bin", tokenizer.vocab_size), val)
