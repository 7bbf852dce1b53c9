"""Recommendation runs end to end: a planted low-rank matrix recovered, msweb through the CLI (train, evaluate,
recommend), exact resume, what each model and loss setting changes, and bad input."""

import gzip
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import forgeml
from forgeml.cli import main
from forgeml.config import load_config
from forgeml.data.rec_features import RecFeatures
from forgeml.errors import Interrupted, RequestError
from forgeml.models.recommenders import build_recommender
from forgeml.training.rec_losses import RecLoss
from tests.recommend_data import planted_ratings

QUICK = {"progress": False, "tensorboard": False}


def msweb_slice(folder: Path, lines: int = 3000) -> Path:
    """The first `lines` visits of the shipped msweb training file (about 1,000 users)."""
    with gzip.open("data/msweb/msweb-train.csv.gz", "rt") as fh:
        head = [next(fh) for _ in range(lines + 1)]
    path = folder / "msweb.csv"
    path.write_text("".join(head))
    return path


def msweb_config(folder: Path, runs: Path, **train) -> Path:
    cfg = {"name": "msweb", "runs_dir": str(runs),
           "data": {"path": str(msweb_slice(folder)), "users": "user", "items": "item", "time": "order",
                    "split": {"by": "leave_last_out", "val": 0.1}},
           "model": {"name": "mf", "dim": 8, "reg": 0.01},
           "train": {"loss": "bpr", "epochs": 2, "batch_size": 256, "lr": 0.02, **QUICK, **train},
           "eval": {"k": 5, "explain": False}}
    path = folder / "msweb.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def test_mf_recovers_a_planted_low_rank_matrix(tmp_path, runs):
    std = planted_ratings(tmp_path / "ratings.csv")
    run = forgeml.train({"name": "planted", "runs_dir": str(runs),
                         "data": {"path": str(tmp_path / "ratings.csv"), "users": "user", "items": "item", "rating": "rating",
                                  "time": "time", "rating_range": [1, 5], "split": {"val": 0.1, "test": 0.2}},
                         "model": {"name": "mf", "dim": 8}, "train": {"epochs": 12, "batch_size": 256, "lr": 0.03, **QUICK},
                         "eval": {"explain": False}})
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert test["rmse"] < 0.5 * std, (test["rmse"], std)  # the mean predictor's RMSE is the std
    assert test["mae"] < test["rmse"] and 0 <= test["recall@10"] <= 1
    model = forgeml.load(run)
    pred = model.predict([{"user": "u0", "item": "i1"}])
    assert 1 <= pred[0]["score"] <= 5  # clipped to data.rating_range
    with pytest.raises(RequestError, match="item 'nope' is not among the 60 items"):
        model.predict([{"user": "u0", "item": "nope"}])


def test_msweb_slice_through_the_cli(tmp_path, runs, capsys):
    config = msweb_config(tmp_path, runs)
    assert main(["train", str(config)]) == 0
    run = runs / "msweb"
    for f in ("features.json", "seen.safetensors", "model.safetensors", "metrics.json", "report.html"):
        assert (run / f).is_file(), f
    assert "Ranking by user activity" in (run / "report.html").read_text()
    capsys.readouterr()
    assert main(["evaluate", str(run), "--json"]) == 0
    measured = json.loads(capsys.readouterr().out)
    assert set(measured) == {"val", "test"} and "recall@5" in measured["test"] and "ndcg@5" in measured["test"]  # eval.k

    model = forgeml.load(run)
    user = "10001"
    seen = set(model.seen(user))
    assert seen  # 10001 visited 1000, 1001, 1002; the last (1002) is its test item
    assert main(["recommend", str(run), "--user", user, "--k", "5", "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert [r["rank"] for r in got["items"]] == [1, 2, 3, 4, 5] and not seen & {r["item"] for r in got["items"]}
    everything = len(model.features.items)
    assert main(["recommend", str(run), "--user", user, "--k", str(everything), "--json", "--include-seen"]) == 0
    assert seen <= {r["item"] for r in json.loads(capsys.readouterr().out)["items"]}
    both = model.recommend_many([user, 10001], k=3)  # a number names the same user
    assert [[r["item"] for r in row] for row in both] == [[r["item"] for r in model.recommend(user, k=3)]] * 2

    assert main(["recommend", str(run), "--user", "t10001"]) == 2
    assert "user 't10001' is not among the" in capsys.readouterr().err.replace("\n", "")
    assert main(["predict", str(run), "{}"]) == 2
    assert "forgeml recommend" in capsys.readouterr().err
    with pytest.raises(RequestError, match="k 0"):
        model.recommend(user, k=0)
    # the stages that do not apply say so in one line
    for argv, says in ((["export", str(run)], "not exported to ONNX"), (["compress", str(run), "--quantize", "int8"], "not compressed"),
                       (["explain", str(run), "{}"], "dot product"), (["tune", str(config)], "cannot be tuned yet"),
                       (["federate", str(config)], "cannot be trained federated")):
        assert main(argv) == 2, argv
        assert says in capsys.readouterr().err.replace("\n", ""), argv


def test_resume_gives_the_weights_of_an_uninterrupted_run(tmp_path, runs):
    from tests.training.test_resume import InterruptAt

    config = msweb_config(tmp_path, runs, epochs=1, checkpoint_every_steps=2)
    whole = forgeml.train(str(config), overrides=["name=whole"])
    with pytest.raises(Interrupted):
        forgeml.train(str(config), overrides=["name=cut"], callbacks=[InterruptAt(3)])
    from forgeml import pipeline

    cut = pipeline.resume(runs / "cut")
    a, b = forgeml.load(whole).model.state_dict(), forgeml.load(cut).model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


# ------------------------------------------------------------------------------- settings change what happens
def features(n_users=6, n_items=5, explicit=False, item_features=None):
    return RecFeatures([f"u{i}" for i in range(n_users)], [f"i{i}" for i in range(n_items)], explicit, rating_mean=3.0,
                       item_counts=[5, 1, 1, 1, 1][:n_items], item_features=item_features)


def model_of(raw: dict, feats=None, side=None):
    cfg = load_config({"data": {"users": "u", "items": "i"}, "model": raw})
    return build_recommender(cfg.model, feats or features(), side=side, seed=0)


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_mf_settings():
    assert n_params(model_of({"name": "mf", "dim": 4})) < n_params(model_of({"name": "mf", "dim": 8}))
    assert n_params(model_of({"name": "mf", "biases": False})) < n_params(model_of({"name": "mf"}))
    small, big = model_of({"name": "mf", "init_std": 0.01}), model_of({"name": "mf", "init_std": 1.0})
    assert small.user_vec.weight.std() < 0.1 < big.user_vec.weight.std()
    x = {"user": torch.tensor([0, 1]), "item": torch.tensor([2, 3])}
    plain, reg = model_of({"name": "mf"}), model_of({"name": "mf", "reg": 0.5})
    assert "penalty" not in plain(x) and reg(x)["penalty"] > 0
    loss = RecLoss("bpr", reg, 5)
    torch.manual_seed(0)
    with_penalty = loss(reg(x), x["item"])
    torch.manual_seed(0)
    assert with_penalty > loss({k: v for k, v in reg(x).items() if k != "penalty"}, x["item"])


def test_two_tower_settings():
    x = {"user": torch.tensor([0, 1, 2]), "item": torch.tensor([2, 3, 2])}
    assert model_of({"name": "two_tower", "dim": 7})(x)["user"].shape == (3, 7)
    assert model_of({"name": "two_tower", "id_dim": 4}).user_tower.ids.weight.shape == (6, 4)
    with pytest.raises(ValueError, match="the user tower reads nothing"):
        model_of({"name": "two_tower", "id_dim": 0})
    deep = model_of({"name": "two_tower", "hidden": [16, 16]})
    assert sum(isinstance(m, torch.nn.Linear) for m in deep.user_tower.mlp) == 3
    drop = model_of({"name": "two_tower", "dropout": 0.5})
    assert any(isinstance(m, torch.nn.Dropout) and m.p == 0.5 for m in drop.user_tower.mlp)
    cos = model_of({"name": "two_tower", "normalize": True, "temperature": 0.5})
    cos.eval()
    out = cos(x)
    assert torch.allclose(out["user"].norm(dim=1), torch.full((3,), 2.0)) and torch.allclose(out["item"].norm(dim=1), torch.ones(3))


def test_two_tower_reads_item_features():
    from forgeml.config import DataConfig
    from forgeml.data.columns import Columns
    from forgeml.data.rec_features import fit_side
    from forgeml.models.two_tower import side_key

    cols = Columns({"title": np.array(["red shoe", "blue hat", "red hat", "green shoe", "blue shoe"], dtype=object),
                    "price": np.array([1.0, 2.0, 3.0, 4.0, 5.0])}, origin="items")
    fitted = fit_side(cols, DataConfig(users="u", items="i", features={"title": "text"}))
    assert [f.kind for f in fitted] == ["text", "numeric"]
    feats = features(item_features=fitted)
    tensors = feats.side_tensors("item", cols)
    side = {side_key("item", i): tensors[f.name] for i, f in enumerate(fitted)}
    with_features = model_of({"name": "two_tower"}, feats, side)
    assert n_params(with_features) > n_params(model_of({"name": "two_tower"}))  # the tabular and rnn encoders
    items = with_features.item_vectors(torch.arange(5))
    assert items.shape == (5, 64) and torch.isfinite(items).all()
    # the features are part of the weights: a bundle scores without its training table
    assert any(".side.item0" in k for k in with_features.state_dict())


def test_losses_differ_by_setting():
    model = model_of({"name": "mf", "dim": 4})
    x = {"user": torch.tensor([0, 1, 2, 3]), "item": torch.tensor([0, 1, 2, 0])}
    out = model(x)

    def value(kind, negatives="in_batch", num=100, counts=None):
        torch.manual_seed(0)
        return float(RecLoss(kind, model, 5, counts, negatives, num)(out, x["item"]).detach())

    assert len({value("bpr"), value("sampled_softmax"), value("full_softmax")}) == 3
    assert value("sampled_softmax", "uniform", 2) != value("sampled_softmax", "uniform", 50)
    assert value("sampled_softmax", "in_batch") != value("sampled_softmax", "uniform")
    assert value("sampled_softmax", counts=[1, 1, 1, 1, 1]) != value("sampled_softmax", counts=[50, 1, 1, 1, 1])  # logQ
    ratings = torch.tensor([1.0, 2.0, 3.0, 4.0])
    assert float(RecLoss("mse", model, 5)(out, ratings).detach()) > 0


def test_two_tower_cold_start_from_user_features(tmp_path, runs):
    """Users of group g0 visit items of kind a, g1 kind b: a new user known by its group alone gets its group's items."""
    rng = np.random.default_rng(0)
    lines = ["user,item,group,kind"]
    for u in range(40):
        group = u % 2
        for i in rng.choice(10, 6, replace=False):
            item = 2 * i + group  # even items are kind a, odd ones kind b
            lines.append(f"u{u},i{item},g{group},{'ab'[group]}")
    (tmp_path / "visits.csv").write_text("\n".join(lines) + "\n")
    run = forgeml.train({"name": "cold", "runs_dir": str(runs),
                         "data": {"path": str(tmp_path / "visits.csv"), "users": "user", "items": "item",
                                  "user_features": ["group"], "item_features": ["kind"],
                                  "features": {"group": "category", "kind": "category"}, "split": {"val": 0.1, "test": 0.1}},
                         "model": {"name": "two_tower", "id_dim": 0, "dim": 8, "hidden": [16]},
                         "train": {"loss": "sampled_softmax", "negatives": "uniform", "num_negatives": 10, "epochs": 10,
                                   "batch_size": 64, "lr": 0.03, **QUICK}, "eval": {"explain": False}})
    model = forgeml.load(run)
    for group, parity in (("g0", 0), ("g1", 1)):
        top = model.recommend("someone-new", k=5, features={"group": group})
        assert [int(r["item"][1:]) % 2 for r in top] == [parity] * 5, top
    with pytest.raises(RequestError, match="needs group"):
        model.recommend("someone-new", features={})
    with pytest.raises(RequestError, match=r"recommend\(user, features=\{group\}\)"):
        model.recommend("someone-new")
