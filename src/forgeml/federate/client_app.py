"""The Flower ClientApp: runs inside each SuperNode's flwr-clientapp process, on that client's rows only.

Two messages reach it from the ServerApp (server_app.py):
  query.summary  -> the summary of its partition's columns (stats.summarise): counts and sums, no rows
  train          -> the global weights in, `local_epochs` of our Trainer on its partition, the new weights out
The Trainer is built by the same function a `forgeml train` run uses (pipeline._trainer), so train settings
(optimizer, precision, train.privacy where the pipeline applies it) hold on every client. FedProx adds
proximal_mu/2 * ||w - w_global||^2 to the loss. A private client (train.privacy) trains each round as one share of
federate.rounds (the "server-round" Flower puts in the train config) and replies with its cumulative epsilon. Where a client's rows come from: the node config's partition-id
(of num-partitions, cut from the config's training split), or its own data-path (a client on its own machine)."""

from __future__ import annotations

import json

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.clientapp import ClientApp

app = ClientApp()


def _settings(context: Context):
    """The run's Config (sent as JSON in the run config) with this node's data path, and its partition."""
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


def privacy_metrics(privacy: dict, pid: int | None) -> dict[str, int | float]:
    """What a private client tells the server: its epsilon over the rounds so far (the guarantee for its rows), and
    how it was spent (server_app.py keeps them per client; the launcher puts them in meta.json)."""
    return {"epsilon": float(privacy["epsilon"]), "noise-multiplier": float(privacy["noise_multiplier"]),
            "sample-rate": float(privacy["sample_rate"]), "steps": int(privacy["steps"]), "rows": int(privacy["rows"]),
            "partition-id": -1 if pid is None else pid}


@app.train()
def train(msg: Message, context: Context) -> Message:
    from forgeml.federate.local import local_round

    cfg, cols = _columns(context)
    config = msg.content["config"]
    received = msg.content["arrays"].to_torch_state_dict()
    _, pid = _settings(context)
    state, rows, privacy = local_round(cfg, cols, json.loads(config["features-json"]), received,
                                       float(config.get("proximal-mu", 0.0)), int(config.get("server-round", 1)),
                                       client=str(pid if pid is not None else context.node_config.get("data-path", context.node_id)))
    metrics = MetricRecord({"num-examples": rows, **(privacy_metrics(privacy, pid) if privacy else {})})
    return Message(RecordDict({"arrays": ArrayRecord(state), "metrics": metrics}), reply_to=msg)
