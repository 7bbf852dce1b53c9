import json

import numpy as np
import pytest
import torch

from forgeml.config import DataConfig
from forgeml.data.bucket import BucketBatcher
from forgeml.data.corpus import prepare_corpus
from forgeml.data.features.text import TextFeature
from forgeml.data.tokenizers import new_tokenizer, tokenizer_from_json
from forgeml.data.windows import WindowBatcher
from forgeml.errors import ConfigError, DataError

TEXTS = ["To be, or not to be: that is the question.", "Whether 'tis nobler in the mind to suffer", "the slings and arrows"]


@pytest.mark.parametrize("kind", ["char", "word", "bpe"])
def test_tokenizers_round_trip_through_json(kind):
    tok = new_tokenizer(kind, 300).fit(TEXTS * 20)
    again = tokenizer_from_json(json.loads(json.dumps(tok.to_json())))
    ids = again.encode("to be or not")
    assert ids == tok.encode("to be or not") and all(i >= 1 for i in ids)
    if kind != "word":
        assert again.decode(ids) == "to be or not"


def test_unknown_characters_become_unk_never_a_crash():
    tok = new_tokenizer("char").fit(["abc"])
    assert tok.encode("a€c") == [2, 1, 4]
    assert tok.decode([2, 1, 4]) == "a\ufffdc"
    assert new_tokenizer("bpe", 300).fit(TEXTS).decode(new_tokenizer("bpe", 300).fit(TEXTS).encode("€")) == "€"  # bytes


def test_text_feature_pads_truncates_and_never_gives_an_empty_row():
    f = TextFeature("text", max_length=4, settings={"tokenizer": "word", "lowercase": True}).fit(np.array(TEXTS, dtype=object))
    out = f.transform(np.array(["to be or not to be", "", "question"], dtype=object))
    assert out.shape == (3, 4) and out[1].tolist() == [1, 0, 0, 0] and out[2, 1:].tolist() == [0, 0, 0]


def test_bucket_batches_cover_every_row_and_trim_padding():
    lengths = np.random.default_rng(0).integers(1, 30, 200)
    x = torch.zeros(200, 30, dtype=torch.long)
    for i, n in enumerate(lengths):
        x[i, :n] = 5
    b = BucketBatcher(x, torch.arange(200), batch_size=16, seed=0, bucket=4)
    seen, padded = [], 0
    for xb, yb in b.epoch(0):
        seen += yb.tolist()
        padded += int((xb == 0).sum())
        assert xb.shape[1] == int(lengths[yb.numpy()].max())
    assert sorted(seen) == list(range(200))
    assert padded < (30 - lengths).sum() / 3  # far less padding than padding every row to 30
    assert [y.tolist() for _, y in b.epoch(3, start=2)] == [y.tolist() for _, y in b.epoch(3)][2:]


def test_bucket_batches_with_two_texts_trim_each_to_its_own_longest():
    """A title and a review: each is cut to its own longest in the batch (an empty-title batch keeps one column);
    the other inputs ride along untrimmed."""
    rng = np.random.default_rng(1)
    titles, reviews = rng.integers(0, 6, 120), rng.integers(1, 40, 120)
    x = {"title": torch.zeros(120, 8, dtype=torch.long), "review": torch.zeros(120, 40, dtype=torch.long), "age": torch.ones(120, 1)}
    for i, (t, r) in enumerate(zip(titles, reviews)):
        x["title"][i, :t], x["review"][i, :r] = 3, 4
    b = BucketBatcher(x, {"y": torch.arange(120)}, batch_size=10, seed=0, bucket=3, text_keys=["title", "review"])
    seen = []
    for xb, yb in b.epoch(0):
        rows = yb["y"].numpy()
        seen += rows.tolist()
        assert xb["title"].shape[1] == max(1, int(titles[rows].max())) and xb["review"].shape[1] == int(reviews[rows].max())
        assert xb["age"].shape == (len(rows), 1)
    assert sorted(seen) == list(range(120))


def test_corpus_split_is_contiguous_and_windows_shift_by_one(tmp_path):
    text = tmp_path / "t.txt"
    text.write_text("abcdefghij" * 100)
    data = prepare_corpus(DataConfig(path=str(text), split={"val": 0.1}, text={"tokenizer": "char"}), 8, tmp_path / "tok")
    assert len(data.train) == 900 and len(data.val) == 100 and data.train.dtype == np.uint16
    x, y = next(WindowBatcher(data.train, 8, 4, 10, seed=0).epoch(0))
    assert x.shape == (4, 8) and torch.equal(x[:, 1:], y[:, :-1])


def test_bad_corpora(tmp_path):
    empty, binary = tmp_path / "empty.txt", tmp_path / "bin.txt"
    empty.write_text("   \n")
    binary.write_bytes(b"\x00\x01\x02" * 100)
    with pytest.raises(DataError, match="empty"):
        prepare_corpus(DataConfig(path=str(empty)), 8, tmp_path / "a")
    with pytest.raises(DataError, match="looks binary"):
        prepare_corpus(DataConfig(path=str(binary)), 8, tmp_path / "b")
    short = tmp_path / "short.txt"
    short.write_text("hello world")
    with pytest.raises(ConfigError, match="block_size"):
        prepare_corpus(DataConfig(path=str(short), text={"tokenizer": "char"}), 64, tmp_path / "c")


def test_corpus_from_a_folder_and_from_jsonl_documents(tmp_path):
    folder = tmp_path / "books"
    folder.mkdir()
    (folder / "a.txt").write_text("first book " * 50)
    (folder / "b.txt").write_text("second book " * 50)
    data = prepare_corpus(DataConfig(path=str(folder), split={"val": 0.2}, text={"tokenizer": "char"}), 8, tmp_path / "f")
    text = data.tokenizer.decode(np.concatenate([data.train, data.val]).tolist())
    assert text == "first book " * 50 + "second book " * 50 and len(data.val) == len(text) // 5
    docs = tmp_path / "docs.jsonl"
    docs.write_text("\n".join(json.dumps({"body": f"document number {i}."}) for i in range(40)))
    data = prepare_corpus(DataConfig(path=str(docs), text_key="body", text={"tokenizer": "word"}), 4, tmp_path / "j")
    assert data.val is not None and len(data.train) > 4 * len(data.val)
    with pytest.raises(DataError, match="line 1 is not a JSON object with a 'text' field"):
        prepare_corpus(DataConfig(path=str(docs)), 4, tmp_path / "k")
