"""FedProx's client side: the loss gains mu/2 * ||w - w_global||^2, pulling a client's weights toward the global
weights it received this round (Li et al., 2018). Through the Trainer's loss, so its loop stays as it is.

A private client (train.privacy) cannot take it through the loss: Opacus's DPOptimizer replaces each p.grad with the
clipped, noised sum of the per-row gradients, which drops the proximal term's gradient. There the term's gradient,
mu * (w - w_global), is added to p.grad after the noise (the DPOptimizer's step hook) and before the optimizer steps:
the same update the plain client makes. It reads no row, so it costs no privacy."""

from __future__ import annotations


def add_proximal_term(trainer, mu: float) -> None:
    """+ mu/2 * ||w - w0||^2 over the trainable weights, w0 their values now (the global ones): in trainer.loss_fn, or
    (a PrivateTrainer) as its gradient after the DP noise."""
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params]
    if getattr(trainer, "private", False):
        before = trainer.optimizer.step_hook  # the accountant's: keep it

        def hook(optimizer) -> None:
            if before is not None:
                before(optimizer)
            for p, a in zip(params, anchor):
                if p.grad is not None:
                    p.grad.add_(p.detach() - a, alpha=mu)

        trainer.optimizer.attach_step_hook(hook)
        return
    base = trainer.loss_fn

    def loss(out, y):
        return base(out, y) + (mu / 2) * sum((p - a).pow(2).sum() for p, a in zip(params, anchor))

    trainer.loss_fn = loss
