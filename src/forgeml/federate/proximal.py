"""FedProx's client side: the loss gains mu/2 * ||w - w_global||^2, pulling a client's weights toward the global
weights it received this round (Li et al., 2018). Through the Trainer's loss, so its loop stays as it is."""

from __future__ import annotations


def add_proximal_term(trainer, mu: float) -> None:
    """Wrap trainer.loss_fn: + mu/2 * ||w - w0||^2 over the trainable weights, w0 their values now (the global ones)."""
    base = trainer.loss_fn
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params]

    def loss(out, y):
        return base(out, y) + (mu / 2) * sum((p - a).pow(2).sum() for p, a in zip(params, anchor))

    trainer.loss_fn = loss
