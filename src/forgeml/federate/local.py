"""One client's round, without Flower: the global weights in, local_epochs of our Trainer on the client's rows, the
new weights out. The Trainer is built by the function `forgeml train` uses (pipeline._trainer): the run's train
settings (optimizer, precision, train.privacy where the pipeline applies it) hold on every client."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

import torch

from forgeml.config import Config, load_config
from forgeml.data.columns import Columns


def client_config(cfg: Config, client: str = "0", server_round: int = 1) -> Config:
    """The run's settings for one round on one client: local_epochs, no validation, quiet, few threads, no checkpoints.
    A fixed train.privacy.seed becomes one seed per (client, round): the same seed every round would draw the same
    batches and add the same noise each time, and composing the rounds' budgets assumes independent noise."""
    d = cfg.to_dict()
    d["train"].update(epochs=cfg.federate.local_epochs, max_steps=None, progress=False, tensorboard=False,
                      threads=cfg.federate.client_threads, restore_best=False, checkpoint_every_minutes=None,
                      checkpoint_every_steps=None)
    d["train"]["early_stopping"]["patience"] = None
    if cfg.train.privacy is not None and cfg.train.privacy.seed is not None:
        digest = hashlib.sha256(f"{cfg.train.privacy.seed}:{client}:{server_round}".encode()).hexdigest()
        d["train"]["privacy"]["seed"] = int(digest[:15], 16)
    return load_config(d)


def local_round(cfg: Config, cols: Columns, features_json: dict[str, Any], received: dict[str, torch.Tensor],
                mu: float = 0.0, server_round: int = 1, client: str = "0") -> tuple[dict[str, torch.Tensor], int, dict[str, Any] | None]:
    """(the trained weights, the client's rows, its privacy spent or None). mu > 0: FedProx's proximal term toward
    `received`. With train.privacy, this round (1-based) is one share of federate.rounds (PrivateTrainer.share_budget):
    the noise is planned for all the rounds' steps and the privacy returned is the client's epsilon over rounds
    1..server_round."""
    from forgeml.data.featureset import FeatureSet
    from forgeml.data.prepare import PreparedData, make_split
    from forgeml.federate.proximal import add_proximal_term
    from forgeml.pipeline import _train_batches, _trainer

    features = FeatureSet.from_json(features_json)
    local = client_config(cfg, client, server_round)
    data = PreparedData(features, {"train": make_split(features, cols)})
    with tempfile.TemporaryDirectory(prefix="forgeml-client-") as scratch:
        trainer = _trainer(local, features, Path(scratch), callbacks=(), init={k: v.clone() for k, v in received.items()})
        if getattr(trainer, "private", False):
            trainer.share_budget(cfg.federate.rounds, server_round - 1)
        if mu > 0:
            add_proximal_term(trainer, mu)
        trainer.fit(_train_batches(local, data, trainer), None)
        state = {k: v.detach().cpu() for k, v in trainer.full_state_dict().items()}
        privacy = trainer.privacy_spent() if getattr(trainer, "private", False) else None
    for k, v in state.items():  # FedAvg averages floats: integer buffers (batch norm's step count) go back as they came
        if not torch.is_floating_point(v):
            state[k] = received[k]
    return state, len(data.splits["train"]), privacy
