"""FedProx's proximal term on our Trainer: it pulls a client's weights toward the global ones, more as mu grows."""

from __future__ import annotations

import torch

from forgeml.federate.proximal import add_proximal_term
from forgeml.training.trainer import Trainer


def _distance(mu: float) -> float:
    torch.manual_seed(0)
    x, y = torch.randn(256, 8), torch.randint(0, 2, (256,))
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 2))
    start = [p.detach().clone() for p in model.parameters()]
    trainer = Trainer(model, "cross_entropy", optimizer="sgd", lr=0.1, epochs=3, batch_size=32, progress=False, seed=0)
    if mu:
        add_proximal_term(trainer, mu)
    trainer.fit((x, y))
    return float(sum((p.detach() - s).pow(2).sum() for p, s in zip(model.parameters(), start)))


def test_the_proximal_term_keeps_weights_closer_the_larger_mu_is():
    free, some, strong = _distance(0.0), _distance(0.3), _distance(3.0)
    assert strong < some < free
