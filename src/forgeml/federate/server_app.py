"""The Flower ServerApp: runs in the SuperLink's flwr-serverapp process. It never reads data: it sees the clients'
summaries (counts and sums, stats.py), their weights and their metrics, nothing else.

  1. waits for the run's clients to connect (each a SuperNode), at most round_timeout seconds (2 minutes at least)
  2. query.summary to each; merges the summaries into features.json (federated feature fitting)
  3. builds the network from the config and the merged features (the config's seed), the initial global weights
  4. runs the strategy (fedavg / fedprox / fedadam) for the rounds; after each round the global weights go to
     <work>/rounds/round-NNNN.safetensors, where the launcher measures them on its held-out split
  5. writes <work>/server.json: done, or the error that stopped it (a round with fewer replies than min-clients)
"""

from __future__ import annotations

import json
import time
import traceback
from pathlib import Path

from flwr.app import ArrayRecord, ConfigRecord, Context, Message, MetricRecord, RecordDict
from flwr.serverapp import Grid, ServerApp

app = ServerApp()


class RoundFailed(Exception):
    """A round got fewer replies than federate.min_clients."""


PRIVACY_KEYS = ("epsilon", "noise-multiplier", "sample-rate", "steps", "rows", "partition-id")  # client_app.privacy_metrics


def _train_metrics(records, weighting: str) -> MetricRecord:
    """Flower's weighted average of the clients' metrics, but a private run's epsilon is the LARGEST client's (each client's
    guarantee is for its own rows; an average would promise the worst-off client more than it has); the rest of the
    clients' privacy figures stay per client (server.json's privacy)."""
    from flwr.serverapp.strategy.strategy_utils import aggregate_metricrecords

    out = aggregate_metricrecords(records, weighting)
    eps = [float(m["epsilon"]) for r in records for m in r.metric_records.values() if "epsilon" in m]
    for key in PRIVACY_KEYS:
        if key in out:
            del out[key]
    if eps:
        out["epsilon"] = max(eps)
    return out


def _strategy(fed, needed: int, privacy: dict[int, list[dict]] | None = None):
    """The Flower strategy for federate.strategy, refusing a round with fewer than `needed` good replies; each round's
    private clients' figures go into `privacy` (round -> one dict per client)."""
    from flwr.serverapp.strategy import FedAdam, FedAvg, FedProx

    common = dict(fraction_train=fed.fraction_fit, fraction_evaluate=0.0, min_train_nodes=needed, min_available_nodes=needed,
                  train_metrics_aggr_fn=_train_metrics)
    base = {"fedavg": FedAvg, "fedprox": FedProx, "fedadam": FedAdam}[fed.strategy]
    extra = {"proximal_mu": fed.proximal_mu} if fed.strategy == "fedprox" else {"eta": fed.server_lr} if fed.strategy == "fedadam" else {}

    class Strict(base):
        def aggregate_train(self, server_round, replies):
            replies = list(replies)
            good = [r for r in replies if not r.has_error()]
            if len(good) < needed:
                errors = "; ".join(r.error.reason[:200] for r in replies if r.has_error())
                raise RoundFailed(f"round {server_round}: {len(good)} of {len(replies)} clients replied, the round needs "
                                  f"{needed} (federate.min_clients){': ' + errors if errors else ''}")
            if privacy is not None:
                for r in good:
                    m = r.content["metrics"]
                    if "epsilon" in m:
                        privacy.setdefault(server_round, []).append(
                            {"node": int(r.metadata.src_node_id), **{k: m[k] for k in PRIVACY_KEYS if k in m}})
            return super().aggregate_train(server_round, good)

    return Strict(**common, **extra)


def _wait_for_nodes(grid: Grid, count: int, timeout: float) -> list[int]:
    end = time.monotonic() + timeout
    while len(nodes := list(grid.get_node_ids())) < count:
        if time.monotonic() > end:
            raise RoundFailed(f"only {len(nodes)} of {count} clients connected within {timeout:g} s")
        time.sleep(0.2)
    return nodes


def _merged_features(grid: Grid, cfg, nodes: list[int], timeout: float) -> dict:
    from forgeml.federate.stats import merge

    asks = [Message(RecordDict({}), dst_node_id=n, message_type="query.summary") for n in nodes]
    replies = list(grid.send_and_receive(asks, timeout=timeout))
    bad = [r for r in replies if r.has_error()]
    if bad or len(replies) < len(nodes):
        reason = bad[0].error.reason if bad else "no reply"
        raise RoundFailed(f"feature summaries: {len(replies) - len(bad)} of {len(nodes)} clients answered ({reason[:400]})")
    # the clients in a fixed order (partition id when the node config has one), so features.json does not depend on timing
    return merge([json.loads(r.content["summary"]["json"]) for r in sorted(replies, key=lambda r: r.metadata.src_node_id)], cfg.data)


@app.main()
def main(grid: Grid, context: Context) -> None:
    from forgeml.atomic import write_json
    from forgeml.bundle import save_safetensors
    from forgeml.config import load_config
    from forgeml.data.featureset import FeatureSet
    from forgeml.models.compose import network_for

    work = Path(context.run_config["work-dir"])
    try:
        cfg = load_config(json.loads(context.run_config["config-json"]))
        fed = cfg.federate
        timeout = fed.round_timeout
        nodes = _wait_for_nodes(grid, fed.clients, max(timeout, 120.0))  # SuperNodes on a busy machine start slowly
        features_json = _merged_features(grid, cfg, nodes, timeout)
        write_json(work / "features.json", features_json)
        features = FeatureSet.from_json(features_json)
        model = network_for(cfg, features, seed=cfg.train.seed)  # group norm where private clients train it
        rounds = work / "rounds"
        rounds.mkdir(exist_ok=True)
        save_safetensors(rounds / "round-0000.safetensors", {k: v.detach().contiguous() for k, v in model.state_dict().items()})
        train_metrics: dict[int, dict] = {}

        def keep(server_round: int, arrays: ArrayRecord) -> MetricRecord | None:
            if server_round:
                save_safetensors(rounds / f"round-{server_round:04d}.safetensors",
                                 {k: v.contiguous() for k, v in arrays.to_torch_state_dict().items()})
            return None

        privacy: dict[int, list[dict]] = {}
        strategy = _strategy(fed, fed.needed(), privacy)
        result = strategy.start(grid=grid, initial_arrays=ArrayRecord(model.state_dict()), num_rounds=fed.rounds,
                                timeout=timeout, train_config=ConfigRecord({"features-json": json.dumps(features_json)}),
                                evaluate_fn=keep)
        for r, m in result.train_metrics_clientapp.items():
            train_metrics[r] = dict(m)
        write_json(work / "server.json", {"status": "done", "train_metrics": train_metrics,
                                          **({"privacy": privacy} if privacy else {})})
    except RoundFailed as exc:
        write_json(work / "server.json", {"status": "failed", "error": str(exc)})
    except Exception as exc:  # a bug or a client's error: the launcher shows it
        write_json(work / "server.json", {"status": "failed", "error": f"{type(exc).__name__}: {exc}",
                                          "traceback": traceback.format_exc()})
        raise
