"""Text and language models: padding never leaks, the KV cache is exact, our GPT matches a plain reference."""

import math
from types import SimpleNamespace

import pytest
import torch
import torch.nn.functional as F

from forgeml.config import GPTConfig, RNNConfig, TrainConfig, TransformerConfig
from forgeml.data.features import ClassLabels, CorpusText, NextToken
from forgeml.data.tokenizers.char import CharTokenizer
from forgeml.models import build_network
from forgeml.models.generation import generate
from forgeml.models.gpt import GPT, KVCache
from forgeml.training.optim import build_optimizer


def gpt_network(cfg: GPTConfig, vocab: int, seed: int = 0):
    """A language-model Network (gpt encoder, next_token head) over a vocabulary of `vocab` characters."""
    tok = CharTokenizer().fit(["".join(chr(65 + i) for i in range(vocab - 2))])
    assert tok.vocab_size == vocab
    return build_network(cfg, [CorpusText("text", tok, cfg.block_size)], [NextToken("next_token", tok)], seed=seed)


@pytest.mark.parametrize("cfg", [RNNConfig(pooling="last"), RNNConfig(cell="gru", pooling="mean", layers=2),
                                 RNNConfig(pooling="max", bidirectional=False), TransformerConfig(pooling="cls"),
                                 TransformerConfig(pooling="mean", positions="sinusoidal")])
def test_padding_never_changes_the_output(cfg):
    text = SimpleNamespace(name="text", kind="text", vocab_size=50, max_length=32)
    model = build_network(cfg, [text], [ClassLabels("y", ["a", "b", "c"])], seed=0).eval()
    ids = torch.tensor([[5, 6, 7, 8]])
    padded = torch.tensor([[5, 6, 7, 8, 0, 0, 0, 0, 0]])
    torch.testing.assert_close(model({"text": ids})["y"], model({"text": padded})["y"], atol=1e-5, rtol=0)


def reference_gpt_logits(model: GPT, idx: torch.Tensor) -> torch.Tensor:
    """model: the gpt encoder; the output layer is tied to its token embedding."""
    """A plain, loop-by-hand GPT forward with the same weights: explicit softmax attention."""
    c = model.cfg
    B, T = idx.shape
    x = model.wte.weight[idx] + model.wpe.weight[:T]
    causal = torch.tril(torch.ones(T, T, dtype=torch.bool))
    for blk in model.blocks:
        h = F.layer_norm(x, (c.n_embd,), blk.ln1.weight, blk.ln1.bias)
        q, k, v = (h @ blk.attn.qkv.weight.T + blk.attn.qkv.bias).split(c.n_embd, dim=2)
        heads = []
        hs = c.n_embd // c.n_head
        for i in range(c.n_head):
            qi, ki, vi = (t[..., i * hs : (i + 1) * hs] for t in (q, k, v))
            att = (qi @ ki.transpose(1, 2)) / math.sqrt(hs)
            heads.append(att.masked_fill(~causal, float("-inf")).softmax(-1) @ vi)
        x = x + torch.cat(heads, -1) @ blk.attn.proj.weight.T + blk.attn.proj.bias
        h = F.layer_norm(x, (c.n_embd,), blk.ln2.weight, blk.ln2.bias)
        x = x + F.gelu(h @ blk.mlp.fc.weight.T + blk.mlp.fc.bias) @ blk.mlp.proj.weight.T + blk.mlp.proj.bias
    x = F.layer_norm(x, (c.n_embd,), model.ln_f.weight, model.ln_f.bias)
    return x @ model.wte.weight.T


def test_gpt_matches_a_hand_written_reference():
    network = gpt_network(GPTConfig(n_layer=2, n_head=4, n_embd=32, block_size=16), 40).eval()
    idx = torch.randint(0, 40, (2, 16), generator=torch.Generator().manual_seed(0))
    out = network({"text": idx})
    assert list(out) == ["next_token"] and out["next_token"].shape == (2, 16, 40)  # the contract: (B, T, V)
    torch.testing.assert_close(out["next_token"], reference_gpt_logits(network.encoders["text"], idx), atol=1e-5, rtol=1e-5)


def test_kv_cache_gives_the_same_logits_and_the_same_text():
    network = gpt_network(GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=16), 30).eval()
    model = network.encoders["text"]
    idx = torch.randint(0, 30, (1, 16), generator=torch.Generator().manual_seed(0))
    cache = KVCache(model.cfg, 1, idx.device, torch.float32)
    pieces = torch.cat([model({"text": idx[:, :5]}, cache), model({"text": idx[:, 5:6]}, cache), model({"text": idx[:, 6:]}, cache)], dim=1)
    torch.testing.assert_close(pieces, model({"text": idx}), atol=1e-5, rtol=0)
    prompt = torch.tensor([[1, 2, 3]])
    for top_k, top_p in [(None, None), (5, None), (None, 0.9)]:  # 40 new tokens: the window slides past 16
        with_cache = list(generate(network, prompt, 40, 0.9, top_k, top_p, torch.Generator().manual_seed(3), use_cache=True))
        without = list(generate(network, prompt, 40, 0.9, top_k, top_p, torch.Generator().manual_seed(3), use_cache=False))
        assert with_cache == without and len(with_cache) == 40


def test_gpt2_init_and_no_decay_on_the_tied_embedding():
    network = gpt_network(GPTConfig(n_layer=4, n_embd=64, n_head=4), 100)
    model = network.encoders["text"]
    assert network.head("next_token").proj.weight is model.wte.weight
    assert {k for k in network.state_dict() if k.startswith("heads.")} == {"heads.next_token.proj.weight"}
    assert abs(model.blocks[0].attn.proj.weight.std().item() - 0.02 / math.sqrt(8)) < 0.002
    opt = build_optimizer(network, TrainConfig(weight_decay=0.1))
    decayed = {id(p) for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"]}
    assert id(model.wte.weight) not in decayed and id(model.blocks[0].mlp.fc.weight) in decayed
    assert all(p.dim() >= 2 for g in opt.param_groups if g["weight_decay"] > 0 for p in g["params"])
