"""The Flower ClientApp: runs inside each SuperNode's flwr-clientapp process, on that client's rows only.

Two messages reach it from the ServerApp (server_app.py):
  query.summary  -> the summary of its partition's columns (stats.summarise): counts and sums, no rows
  train          -> the global weights in, `local_epochs` of our Trainer on its partition, the new weights out
The Trainer is built by the same function a `forgeml train` run uses (pipeline._trainer), so train settings
(optimizer, precision, train.privacy where the pipeline applies it) hold on every client. FedProx adds
proximal_mu/2 * ||w - w_global||^2 to the loss. Where a client's rows come from: the node config's partition-id
(of num-partitions, cut from the config's training split), or its own data-path (a client on its own machine)."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _settings(context: Context):
    """The run's Config (sent as YAML in the run config) with this node's data path, and its partition."""
    from forgeml.config import load_config

    cfg = load_config(json.loads(context.run_config["config-json"]))
    node = context.node_config
    if "data-path" in node:  # a client on its own machine: its own file, all of its training split
        cfg.data.path = str(node["data-path"])
        return cfg, None
    return cfg, int(node["partition-id"])


def _columns(context: Context):
    from forgeml.federate.shares import client_columns

    cfg, pid = _settings(context)
    fed = cfg.federate
    return cfg, client_columns(cfg, pid, fed.clients, fed.partition, fed.partition_seed)


@app.query("summary")
def summary(msg: Message, context: Context) -> Message:
    from forgeml.federate.stats import summarise

    cfg, cols = _columns(context)
    return Message(RecordDict({"summary": ConfigRecord({"json": json.dumps(summarise(cols, cfg.data))})}), reply_to=msg)


def _client_config(cfg, threads: int):
    """The run's train settings for one round on one client: local_epochs, no validation, quiet, few threads."""
    from forgeml.config import load_config

    d = cfg.to_dict()
    d["train"].update(epochs=cfg.federate.local_epochs, max_steps=None, progress=False, tensorboard=False, threads=threads,
                      restore_best=False, checkpoint_every_minutes=None, checkpoint_every_steps=None)
    d["train"]["early_stopping"]["patience"] = None
    return load_config(d)


def add_proximal_term(trainer, mu: float) -> None:
    """FedProx: the loss gains mu/2 * ||w - w_global||^2 over the trainable weights, w_global as received this round."""
    base = trainer.loss_fn
    params = [p for p in trainer.model.parameters() if p.requires_grad]
    anchor = [p.detach().clone() for p in params]

    def loss(out, y):
        return base(out, y) + (mu / 2) * sum((p - a).pow(2).sum() for p, a in zip(params, anchor))

    trainer.loss_fn = loss


@app.train()
def train(msg: Message, context: Context) -> Message:
    import torch

    from forgeml.data.featureset import FeatureSet
    from forgeml.data.prepare import PreparedData, make_split
    from forgeml.pipeline import _train_batches, _trainer

    cfg, cols = _columns(context)
    config = msg.content["config"]
    features = FeatureSet.from_json(json.loads(config["features-json"]))
    local = _client_config(cfg, cfg.federate.client_threads)
    data = PreparedData(features, {"train": make_split(features, cols)})
    received = msg.content["arrays"].to_torch_state_dict()
    with tempfile.TemporaryDirectory(prefix="forgeml-client-") as scratch:
        trainer = _trainer(local, features, Path(scratch), callbacks=(), init={k: v.clone() for k, v in received.items()})
        mu = float(config.get("proximal-mu", 0.0))
        if mu > 0:
            add_proximal_term(trainer, mu)
        result = trainer.fit(_train_batches(local, data, trainer), None)
        state = {k: v.detach().cpu() for k, v in trainer.full_state_dict().items()}
    metrics = {"num-examples": len(data.splits["train"]), "steps": int(result.steps)}
    for k, v in state.items():  # FedAvg averages floats: integer buffers (batch norm's step count) go back as they came
        if not torch.is_floating_point(v):
            state[k] = received[k]
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": MetricRecord(metrics)}), reply_to=msg)
