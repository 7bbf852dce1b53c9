"""`forgeml federate CONFIG`: one federated run on this machine, from the config to an ordinary bundle.

The launcher is the run's owner: it cuts the training split into the clients' partitions (only to check each client
gets rows: every client reads its own rows itself), keeps the held-out val/test split, starts the SuperLink and the
SuperNodes (processes.py), submits the Flower app with `flwr run`, measures each round's global weights on the held-out
split as the ServerApp writes them, and writes the bundle: config.yaml, model.safetensors (the last round's weights),
features.json (merged from the clients' summaries by the server), metrics.json, history.jsonl (a line per round and
split) and report.html. Every process it started is ended on every exit path; the run folder appears whole, or not
at all (the staging folder beside it is removed)."""

from __future__ import annotations

import json
import platform
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from forgeml.config import Config, load_config
from forgeml.errors import ConfigError
from forgeml.federate import FederateError, require_flwr
from forgeml.federate.processes import Fleet, free_port, listening

APP_TOML = """\
# written by forgeml federate: the Flower app of this run (its components are forgeml's, found by import path)
[build-system]
requires = ["hatchling"]
build-backend = "hatchling.build"

[project]
name = "forgeml-federate"
version = "1.0.0"
description = "forgeml federated run"
license = "Apache-2.0"
dependencies = []

[tool.flwr.app]
publisher = "forgeml"

[tool.flwr.app.components]
serverapp = "forgeml.federate.server_app:app"
clientapp = "forgeml.federate.client_app:app"

[tool.flwr.app.config]
work-dir = {work}
config-json = {config}
"""

FLWR_CONFIG = """\
[superlink]
default = "local"

[superlink.local]
address = {address}
{security}
"""


def federated_config(config: Config | str | Path | dict[str, Any], overrides: list[str] | dict[str, Any] | None = None,
                     **given: Any) -> Config:
    """The run's Config with a federate section: the file's (or the defaults), the CLI's values over it."""
    cfg = config if isinstance(config, Config) else load_config(config, overrides)
    if isinstance(config, Config) and overrides:
        cfg = load_config(cfg.to_dict(), overrides)
    if cfg.data.recommend:
        from forgeml.errors import ConfigError

        raise ConfigError("federate: a recommendation run (data.users + data.items) cannot be trained federated: each "
                          "client would hold its own users, whose vectors the server cannot average")
    d = cfg.to_dict()
    d["federate"] = {**(d.get("federate") or {}), **{k: v for k, v in given.items() if v is not None}}
    for key in ("path", "val_path", "test_path", "labels_path"):  # Flower's processes run elsewhere: absolute paths
        value = d["data"].get(key)
        if isinstance(value, str) and Path(value).exists():
            d["data"][key] = str(Path(value).resolve())
    return load_config(d)


def federate(config: Config | str | Path | dict[str, Any], *, overrides: list[str] | dict[str, Any] | None = None,
             clients: int | None = None, rounds: int | None = None, partition: str | None = None, strategy: str | None = None,
             local_epochs: int | None = None, proximal_mu: float | None = None, min_clients: int | None = None,
             name: str | None = None, overwrite: bool = False, say: Callable[[str], None] | None = None,
             superlink: str | None = None, root_certificates: str | None = None,
             on_round: Callable[[int, Fleet], None] | None = None) -> Path:
    """Federated training with Flower on this machine; returns the run folder (an ordinary bundle).

    Args:
        config: a YAML file, dict or Config; its `federate` section (if any) gives the defaults of the arguments below.
        clients, rounds, partition ('iid' | 'dirichlet:ALPHA'), strategy ('fedavg' | 'fedprox' | 'fedadam'),
            local_epochs, proximal_mu, min_clients: override federate.<same name>.
        name / overwrite: the run folder under runs_dir, as for `forgeml train`.
        superlink: HOST:PORT of a SuperLink already running ON THIS MACHINE (the ServerApp writes each round into this
            run's staging folder) whose SuperNodes run elsewhere; None = start a SuperLink and the SuperNodes here.
        root_certificates: with superlink, the CA certificate to reach it over TLS; None = insecure (loopback only).
        say: called with a line per stage and per round.
        on_round: called with each round number measured and the running Fleet (a test kills a client there).

    Example:
        >>> federate("examples/adult-mlp.yaml", clients=5, rounds=20, partition="dirichlet:0.5")  # doctest: +SKIP
        PosixPath('runs/adult-mlp-federated')
    """
    from forgeml.data.prepare import load_columns
    from forgeml.federate.shares import shares
    from forgeml.federate.stats import summarise
    from forgeml.run_folder import claim_run_dir

    require_flwr()
    say = say or (lambda line: None)
    cfg = federated_config(config, overrides, clients=clients, rounds=rounds, partition=partition, strategy=strategy,
                           local_epochs=local_epochs, proximal_mu=proximal_mu, min_clients=min_clients)
    fed = cfg.federate
    if cfg.model.name in ("gpt", "custom", "pretrained"):
        raise FederateError(f"model.name {cfg.model.name}: federated runs train table and image models built from the "
                            "config (mlp, cnn, rnn, transformer, conv1d, composite ...)")
    # everything that can fail on bad input, before any folder or process: the data, the partition, the column kinds
    cols = load_columns(cfg.data)
    train = cols["train"]
    parts = shares(cfg, train, fed.clients, fed.partition, fed.partition_seed)
    summarise(train.take(parts[0]), cfg.data)  # refuses columns whose features are not merged (text, sequence, ...)
    held = {k: v for k, v in cols.items() if k != "train"}
    if cfg.train.privacy is not None:
        _check_budget(cfg, [len(p) for p in parts], say)
    say(f"{fed.clients} clients, {fed.partition} partition: {', '.join(str(len(p)) for p in parts)} training rows; "
        f"{fed.rounds} rounds of {fed.strategy}, {fed.local_epochs} local epoch(s) each")
    with claim_run_dir(cfg, name or f"{cfg.name or 'run'}-federated", overwrite) as run_dir:
        cfg.name = run_dir.name
        work = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}-federate-", dir=run_dir.parent))
        try:
            _run(cfg, work, held, say, on_round, superlink, root_certificates)
            _write_bundle(cfg, work, run_dir, held, [len(p) for p in parts])
        finally:
            shutil.rmtree(work, ignore_errors=True)
    return run_dir


def _check_budget(cfg: Config, sizes: list[int], say: Callable[[str], None]) -> None:
    """train.privacy: each client's noise covers rounds x local_epochs epochs of its rows; a budget that cannot be met
    (the smallest partition is the hardest: its delta bound and its sample rate) is a ConfigError before any process."""
    from forgeml.training.privacy import plan_share

    p, fed = cfg.train.privacy, cfg.federate
    smallest = min(sizes)
    try:
        plan = plan_share(smallest, cfg.train.batch_size, fed.local_epochs, None, p.epsilon, p.delta, p.max_grad_norm,
                          p.accountant, rounds=fed.rounds)
    except ConfigError as exc:
        raise ConfigError(f"train.privacy with federate ({fed.rounds} rounds x {fed.local_epochs} local epoch(s) on the "
                          f"smallest client's {smallest} rows): {exc}") from None
    say(f"train.privacy on each client: (epsilon {p.epsilon:g}, delta {p.delta:g}) for its rows over all {fed.rounds} rounds "
        f"({plan.steps} DP-SGD steps on the smallest client: noise multiplier {plan.noise_multiplier:.3g}). The server "
        "still sees each client's feature summary (counts, sums, categories; no privacy) and its round updates (private)")


def _privacy_meta(cfg: Config, server: dict) -> dict[str, Any] | None:
    """meta.json's privacy of a federated private run, from what the clients replied (server.json): each client's
    cumulative epsilon after its last round, and the run's epsilon = the largest (each guarantee is for that client's rows)."""
    p = cfg.train.privacy
    if p is None:
        return None
    latest: dict[Any, dict] = {}
    for r, records in sorted(server.get("privacy", {}).items(), key=lambda kv: int(kv[0])):
        for rec in records:
            key = rec.get("partition-id", -1) if rec.get("partition-id", -1) >= 0 else f"node-{rec['node']}"
            latest[key] = {"client": key, "round": int(r), "epsilon": round(float(rec["epsilon"]), 4),
                           "noise_multiplier": rec["noise-multiplier"], "sample_rate": rec["sample-rate"],
                           "rows": int(rec["rows"]), "steps": int(rec["steps"])}
    if not latest:
        raise FederateError("train.privacy: no client reported the privacy it spent; the run's guarantee is unknown")
    clients = sorted(latest.values(), key=lambda c: str(c["client"]))
    worst = max(clients, key=lambda c: c["epsilon"])
    return {"epsilon": worst["epsilon"], "target_epsilon": p.epsilon, "delta": p.delta, "accountant": p.accountant,
            "max_grad_norm": p.max_grad_norm, "noise_multiplier": worst["noise_multiplier"], "sample_rate": worst["sample_rate"],
            "expected_batch": round(worst["sample_rate"] * worst["rows"], 2), "rows": worst["rows"], "steps": worst["steps"],
            "sampling": "poisson", "federated": True, "rounds": cfg.federate.rounds, "clients": clients}


def _run(cfg: Config, work: Path, held: dict, say: Callable[[str], None], on_round, superlink: str | None = None,
         root_certificates: str | None = None) -> None:
    """Start the processes, submit the app, follow the rounds until the server is done; stop every process."""
    fed = cfg.federate
    run_id = uuid.uuid4().hex
    app_dir, home = work / "app", work / "flwr-home"
    app_dir.mkdir()
    home.mkdir()
    (app_dir / "pyproject.toml").write_text(APP_TOML.format(work=json.dumps(str(work)), config=json.dumps(json.dumps(cfg.to_dict()))))
    with Fleet(work, run_id) as fleet:
        if superlink is not None:  # the SuperLink and the clients' SuperNodes are the user's (docs/federated.md)
            security = (f"root-certificates = {json.dumps(str(Path(root_certificates).resolve()))}" if root_certificates
                        else "insecure = true")
            (home / "config.toml").write_text(FLWR_CONFIG.format(address=json.dumps(superlink), security=security))
            say(f"submitting to the SuperLink at {superlink}; waiting for {fed.clients} SuperNodes to connect")
        else:
            link = free_port()
            (home / "config.toml").write_text(FLWR_CONFIG.format(address=json.dumps(f"127.0.0.1:{link}"), security="insecure = true"))
            fleet.start("superlink", ["flower-superlink", "--insecure", "--host", "127.0.0.1", "--port", str(link),
                                      "--disable-runtime-dependency-installation"])
            _wait(lambda: listening(link), fleet, 60, "the SuperLink did not start listening")
            for i in range(fed.clients):
                fleet.start(f"client-{i}", ["flower-supernode", "--insecure", "--superlink", f"127.0.0.1:{link}",
                                            "--host", "127.0.0.1", "--port", str(free_port()),
                                            "--node-config", f"partition-id={i} num-partitions={fed.clients}"])
            say(f"SuperLink on 127.0.0.1:{link}, {fed.clients} SuperNodes started; logs in {work / 'logs'} while it runs")
        fleet.start("flwr-run", ["flwr", "run", str(app_dir), "local", "--stream"])
        _follow(cfg, work, fleet, held, say, on_round)


def _wait(ok: Callable[[], bool], fleet: Fleet, seconds: float, what: str) -> None:
    end = time.monotonic() + seconds
    while not ok():
        dead = [(n, c) for n, c in fleet.dead() if n != "flwr-run" or c != 0]
        if dead:
            name, code = dead[0]
            raise FederateError(f"{name} exited with code {code}: {what}.\n{fleet.log_tail(name)}")
        if time.monotonic() > end:
            raise FederateError(f"{what} within {seconds:g} s (logs: {fleet.work / 'logs'})")
        time.sleep(0.2)


def _follow(cfg: Config, work: Path, fleet: Fleet, held: dict, say: Callable[[str], None], on_round=None) -> None:
    """Measure each round's global weights as they appear; return when the server says done, raise when it failed,
    when the SuperLink died, or when nothing happened for a round's timeout."""
    fed = cfg.federate
    rounds, status = work / "rounds", work / "server.json"
    measured: set[int] = set()
    evaluator = None
    last_news = time.monotonic()
    while True:
        done = status.is_file()
        for path in sorted(rounds.glob("round-*.safetensors")) if rounds.is_dir() else []:
            r = int(path.stem.split("-")[1])
            if r in measured or not (work / "features.json").is_file():
                continue
            evaluator = evaluator or RoundEvaluator(cfg, json.loads((work / "features.json").read_text()), held)
            record = evaluator.measure(r, path)
            measured.add(r)
            last_news = time.monotonic()
            if r:
                shown = ", ".join(f"{s}.{k} {v:.4f}" for s, m in record.items() for k, v in m.items() if k in ("loss", "accuracy", "mae"))
                say(f"round {r}/{fed.rounds}: {shown}")
            if on_round is not None:
                on_round(r, fleet)
        if done:
            result = json.loads(status.read_text())
            if result["status"] != "done":
                raise FederateError(f"the federated run failed: {result['error']}")
            (work / "measured.json").write_text(json.dumps(evaluator.history if evaluator else []))
            return
        if "superlink" in fleet.procs and fleet.procs["superlink"].poll() is not None:
            raise FederateError(f"the SuperLink exited (code {fleet.procs['superlink'].returncode}):\n{fleet.log_tail('superlink')}")
        run = fleet.procs["flwr-run"]
        if run.poll() not in (None, 0):
            raise FederateError(f"flwr run failed (code {run.returncode}):\n{fleet.log_tail('flwr-run')}")
        if time.monotonic() - last_news > fed.round_timeout + 120:
            raise FederateError(f"no round finished in {fed.round_timeout + 120:g} s; see the logs in {work / 'logs'}")
        time.sleep(0.2)


class RoundEvaluator:
    """The global weights of each round, measured on the launcher's held-out splits (val, test): loss and metrics."""

    def __init__(self, cfg: Config, features_json: dict, held: dict):
        from forgeml.data.featureset import FeatureSet
        from forgeml.data.prepare import make_split
        from forgeml.models.compose import network_for

        self.features = FeatureSet.from_json(features_json)
        self.splits = {k: make_split(self.features, v) for k, v in held.items()}
        self.model = network_for(cfg, self.features, seed=cfg.train.seed)  # group norm where private clients trained it
        self.history: list[dict[str, Any]] = []

    @torch.no_grad()
    def measure(self, r: int, path: Path) -> dict[str, dict[str, float]]:
        from forgeml.bundle import load_safetensors
        from forgeml.data.tensor_dict import rows as take_rows
        from forgeml.evaluation.metrics import metrics_for

        self.model.load_state_dict(load_safetensors(path))
        self.model.eval()
        out: dict[str, dict[str, float]] = {}
        for name, split in self.splits.items():
            metrics, total, n = metrics_for(self.features, full=False), 0.0, len(split)
            for start in range(0, n, 1024):
                x = take_rows(split.x, start, min(start + 1024, n))
                y = take_rows(split.y, start, min(start + 1024, n))
                pred = self.model(x)
                metrics.update(pred, y)
                total += float(self.model.eval_loss(pred, y)) * len(next(iter(y.values())))
            values = {"loss": total / max(n, 1), **{k: float(v) for k, v in metrics.compute().items() if isinstance(v, (int, float))}}
            out[name] = values
            self.history.append({"split": name, "step": r, "round": r, **values})
        return out


def _write_bundle(cfg: Config, work: Path, run_dir: Path, held: dict, sizes: list[int]) -> None:
    """The bundle, staged in work/bundle and renamed into place: whole, or not there."""
    from forgeml import __version__
    from forgeml.bundle import FORMAT_VERSION, Bundle, load_safetensors
    from forgeml.data.featureset import FeatureSet
    from forgeml.data.prepare import PreparedData, make_split
    from forgeml.pipeline import config_digest, evaluate_splits
    from forgeml.predictor import Predictor
    from forgeml.report.build import report_split, write_report
    from forgeml.run_folder import replacing

    fed = cfg.federate
    features_json = json.loads((work / "features.json").read_text())
    history = json.loads((work / "measured.json").read_text())
    server = json.loads((work / "server.json").read_text())
    last = work / "rounds" / f"round-{fed.rounds:04d}.safetensors"
    stage = work / "bundle"
    stage.mkdir()
    bundle = Bundle(stage)
    bundle.write_config(cfg.to_yaml())
    bundle.write_json("features.json", features_json)
    state = load_safetensors(last)
    bundle.save_weights(state)
    for record in history:
        bundle.append_history(record)
    for r, m in sorted(server.get("train_metrics", {}).items(), key=lambda kv: int(kv[0])):  # what the clients reported
        shown = {k: v for k, v in m.items() if k != "num-examples"}
        if shown:
            bundle.append_history({"split": "train", "step": int(r), "round": int(r), **shown})
    features = FeatureSet.from_json(features_json)
    bundle.update_meta(
        format_version=FORMAT_VERSION, forgeml_version=__version__, torch_version=torch.__version__, status="complete",
        created=time.strftime("%Y-%m-%dT%H:%M:%S"), task=features.task, python=platform.python_version(),
        parameters=sum(int(v.numel()) for k, v in state.items() if v.is_floating_point()),
        data={"train": sum(sizes), **{k: len(next(iter(v.data.values()))) for k, v in held.items()}},
        config_digest=config_digest(cfg), steps=fed.rounds,
        weights={"step": fed.rounds, "why": f"the global weights after the last of {fed.rounds} rounds"},
        variant={"kind": "federated", "clients": fed.clients, "rounds": fed.rounds, "partition": fed.partition,
                 "strategy": fed.strategy, "local_epochs": fed.local_epochs, "client_rows": sizes,
                 **({"proximal_mu": fed.proximal_mu} if fed.strategy == "fedprox" else {}),
                 **({"server_lr": fed.server_lr} if fed.strategy == "fedadam" else {})},
        **({"privacy": privacy} if (privacy := _privacy_meta(cfg, server)) else {}))
    predictor = Predictor(stage, trust_code=False)
    data = PreparedData(features, {k: make_split(features, v) for k, v in held.items()})
    shown: list = []
    metrics = evaluate_splits(predictor, data, cfg.eval.splits, step=fed.rounds, keep={report_split(data.splits): shown})
    bundle.write_json("metrics.json", metrics)
    with replacing(run_dir):
        write_report(stage, data, predictor, outputs=shown, title=run_dir.name)
        stage.rename(run_dir)
