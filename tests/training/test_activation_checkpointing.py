"""train.activation_checkpointing: each block's forward runs again in the backward (its activations were not kept),
and training takes exactly the same steps as without it; a model with no blocks to checkpoint is refused."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from forgeml.config import GPTConfig, TransformerConfig
from forgeml.errors import ConfigError
from forgeml.models.encoders.transformer import TransformerEncoder
from forgeml.models.gpt import GPT
from forgeml.training.callbacks import Callback
from forgeml.training.trainer import Trainer

VOCAB, T = 17, 8


class NextToken(nn.Module):
    """The GPT body and a linear head: logits (B, T, V) for token ids (B, T)."""

    def __init__(self):
        super().__init__()
        self.body = GPT(GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=T, dropout=0.2), VOCAB)
        self.head = nn.Linear(16, VOCAB)

    def forward(self, x):
        return self.head(self.body({"text": x}))


class Classify(nn.Module):
    """The Transformer encoder and a linear head: logits (B, 3) for token ids (B, T)."""

    def __init__(self):
        super().__init__()
        self.body = TransformerEncoder(TransformerConfig(d_model=16, heads=2, layers=2, dropout=0.2), "text", VOCAB, T)
        self.head = nn.Linear(16, 3)

    def forward(self, x):
        return self.head(self.body({"text": x}))


def sequence_loss(out, y):
    return F.cross_entropy(out.flatten(0, 1), y.flatten())


MODELS = {"gpt": (NextToken, sequence_loss, lambda g: torch.randint(0, VOCAB, (32, T), generator=g)),
          "transformer": (Classify, F.cross_entropy, lambda g: torch.randint(0, 3, (32,), generator=g))}


def fit(kind: str, checkpointing: bool):
    """Three steps; the number of MLP forwards each block ran, the weights and the losses."""
    build, loss, targets = MODELS[kind]
    torch.manual_seed(0)
    model = build()
    g = torch.Generator().manual_seed(1)
    x, y = torch.randint(1, VOCAB, (32, T), generator=g), targets(g)
    calls = []
    for block in model.body.blocks:
        block.mlp.register_forward_pre_hook(lambda *_: calls.append(1))  # pre: the recompute stops early, after the last saved tensor
    losses = []
    trainer = Trainer(model, loss, max_steps=3, batch_size=8, progress=False, log_every_steps=1, device="cpu", seed=0,
                      activation_checkpointing=checkpointing, callbacks=[_Losses(losses)])
    trainer.fit((x, y))
    return len(calls), {k: v.clone() for k, v in model.state_dict().items()}, losses


class _Losses(Callback):
    def __init__(self, into):
        self.into = into

    def on_log(self, trainer, record):
        self.into.append(record["loss"])


@pytest.mark.parametrize("kind", list(MODELS))
def test_blocks_are_recomputed_in_the_backward_and_training_is_unchanged(kind):
    plain_calls, plain_weights, plain_losses = fit(kind, False)
    calls, weights, losses = fit(kind, True)
    assert plain_calls == 3 * 2, "one forward per block per step"
    assert calls == 2 * plain_calls, "each block's forward runs again in the backward"
    assert losses == pytest.approx(plain_losses, rel=1e-6)
    for k in plain_weights:  # dropout draws the same masks in the recompute: the same gradients, the same steps
        torch.testing.assert_close(weights[k], plain_weights[k], rtol=1e-5, atol=1e-6, msg=lambda m, k=k: f"{k}: {m}")


def test_evaluation_is_not_recomputed():
    torch.manual_seed(0)
    model = NextToken()
    Trainer(model, sequence_loss, max_steps=1, progress=False, device="cpu", activation_checkpointing=True)
    calls = []
    model.body.blocks[0].mlp.register_forward_pre_hook(lambda *_: calls.append(1))
    model.eval()
    with torch.no_grad():
        model(torch.ones(2, T, dtype=torch.long))
    assert len(calls) == 1


def test_a_model_without_blocks_is_refused_with_a_clear_error():
    with pytest.raises(ConfigError, match="activation_checkpointing: true but this model .Linear. has no blocks"):
        Trainer(nn.Linear(4, 3), "cross_entropy", progress=False, device="cpu", activation_checkpointing=True)


def test_blocks_with_batch_norm_are_refused():
    model = nn.Module()
    model.blocks = nn.ModuleList([nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4))])
    with pytest.raises(ConfigError, match="batch norm"):
        Trainer(model, "cross_entropy", progress=False, device="cpu", activation_checkpointing=True)
