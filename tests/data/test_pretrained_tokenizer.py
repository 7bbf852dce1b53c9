"""The pretrained tokenizer kind: a model folder's tokenizer.json, never fitted, id 0 = padding, [CLS]/[SEP] added,
truncated to max_length, saved whole in features.json."""

from __future__ import annotations

import json

import numpy as np
import pytest

from forgeml.data.features.text import TextFeature, kept_tokenizers
from forgeml.data.tokenizers import tokenizer_from_json
from forgeml.data.tokenizers.pretrained import PretrainedTokenizer
from forgeml.errors import ConfigError
from tests.pretrained_fixtures import make_tiny_bert


def test_special_tokens_truncation_and_no_fixed_padding(tiny_bert):
    tok = PretrainedTokenizer.from_folder(tiny_bert, max_length=8)
    vocab = json.loads((tiny_bert / "tokenizer.json").read_text())["model"]["vocab"]
    short = tok.encode("free prize")
    assert short[0] == vocab["[CLS]"] and short[-1] == vocab["[SEP]"] and 0 not in short  # no padding to a fixed length
    long = tok.encode("call now to claim your free prize of a thousand pounds today " * 3)
    assert len(long) == 8 and long[0] == vocab["[CLS]"] and long[-1] == vocab["[SEP]"]  # [SEP] kept at the cut
    assert tok.fit(["anything"]) is tok  # never trained
    assert tok.decode(short) == "free prize"


def test_saved_state_encodes_the_same_without_the_folder(tiny_bert, tmp_path):
    tok = PretrainedTokenizer.from_folder(tiny_bert, max_length=16)
    feature = TextFeature("text", tok, max_length=16, kept=True)
    saved = json.loads(json.dumps(feature.to_json()))
    for f in tiny_bert.iterdir():
        f.unlink()
    back = TextFeature.from_json(saved)
    texts = np.array(["WINNER!! claim now", "ok see you at 5", ""], dtype=object)
    assert (back.transform(texts) == feature.transform(texts)).all()
    assert back.kept and back.tokenizer.kind == "pretrained" and back.tokenizer.max_length == 16
    assert kept_tokenizers(type("F", (), {"inputs": [back]})()) == {"text": back.tokenizer}
    assert tokenizer_from_json(saved["tokenizer"]).encode("hello") == tok.encode("hello")
    assert feature.transform(np.array([""], dtype=object))[0].tolist()[:2] != [0, 0]  # an empty text is [CLS] [SEP]


def test_a_kept_tokenizer_is_not_refitted(tiny_bert):
    tok = PretrainedTokenizer.from_folder(tiny_bert, max_length=16)
    feature = TextFeature("text", tok, max_length=16, kept=True).fit(np.array(["x y z"] * 5, dtype=object))
    assert feature.tokenizer is tok


def test_a_pad_token_that_is_not_id_0_is_refused(tmp_path):
    pytest.importorskip("transformers")
    folder = make_tiny_bert(tmp_path / "model", specials=["[UNK]", "[PAD]", "[CLS]", "[SEP]", "[MASK]"], layers=1)
    with pytest.raises(ConfigError, match=r"padding token '\[PAD\]' is id 1.*id 0 = padding.*refused rather than remapped"):
        PretrainedTokenizer.from_folder(folder, 16)


def test_a_folder_without_tokenizer_json_is_a_clear_error(tmp_path):
    with pytest.raises(ConfigError, match="no tokenizer.json"):
        PretrainedTokenizer.from_folder(tmp_path, 16)
    (tmp_path / "tokenizer.json").write_text("{not json")
    with pytest.raises(ConfigError, match="not a Hugging Face tokenizer file"):
        PretrainedTokenizer.from_folder(tmp_path, 16)
