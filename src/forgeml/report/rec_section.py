"""The report's section of a recommendation run: ranking metrics by user activity.

Users are put in buckets by their number of training interactions (1, 2-3, 4-7, 8-15, ... powers of two); for each
bucket the table and the bar plot give the users in it and their mean recall@k, ndcg@k and hit rate@k on the split the
report draws (test, else validation). Matrix factorisation is known to serve light users worst: this shows by how much.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def activity_buckets(activity: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Bucket index per user (by training interactions, powers of two) and each bucket's label."""
    edges = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024]
    top = max(int(activity.max()) if len(activity) else 1, 1)
    edges = [e for e in edges if e <= top] + [top + 1]
    labels = [f"{lo}" if hi - lo == 1 else f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:])]
    return np.clip(np.searchsorted(edges, activity, side="right") - 1, 0, len(labels) - 1), labels


def by_activity(per_user) -> dict[str, Any]:
    """{"rows": [(bucket, users, recall, ndcg, hit)], "keys": [...], "figure": data URI} of a PerUser."""
    from forgeml.report import plots

    k = per_user.k
    bucket, labels = activity_buckets(per_user.activity)
    rows = []
    for b, label in enumerate(labels):
        mine = bucket == b
        if not mine.any():
            continue
        rows.append((label, int(mine.sum()), float(per_user.recall[mine].mean()), float(per_user.ndcg[mine].mean()),
                     float(per_user.hit[mine].mean())))
    plt = plots._plt()
    fig, ax = plt.subplots(figsize=(max(6.5, 1.1 * len(rows)), 3.4))
    x = np.arange(len(rows))
    for j, (name, col) in enumerate(((f"recall@{k}", 2), (f"ndcg@{k}", 3), (f"hit rate@{k}", 4))):
        ax.bar(x + (j - 1) * 0.27, [r[col] for r in rows], width=0.27, label=name)
    ax.set_xticks(x, [f"{r[0]}\n{r[1]:,} users" for r in rows], fontsize=7)
    ax.set(title="ranking metrics by user activity", xlabel="training interactions per user", ylabel="mean over users")
    ax.legend()
    return {"rows": rows, "columns": ["training interactions", "users", f"recall@{k}", f"ndcg@{k}", f"hit_rate@{k}"],
            "figure": plots.to_data_uri(fig)}


def rec_sections(bundle, data, predictor, notes: list[str]) -> dict[str, Any]:
    """The report's context for a recommendation run: {"split": name, "rec": by_activity(...)}."""
    from forgeml.data.interactions import load_run_interactions
    from forgeml.errors import ForgeError
    from forgeml.evaluation.ranking import split_per_user
    from forgeml.predictor import Predictor
    from forgeml.report.build import report_split

    predictor = predictor or Predictor(bundle.path)
    if data is None:
        try:
            data = load_run_interactions(bundle, predictor.config)
        except ForgeError as exc:  # a bundle moved to another machine: its interactions may not be there
            notes.append(f"the run's data cannot be read here ({str(exc).splitlines()[0]}): no metrics by user activity")
            return {}
    notes += list(data.notes)
    name = report_split(data.splits)
    if name is None:
        notes.append("the run has no test or validation split: no metrics by user activity")
        return {}
    scores = split_per_user(predictor, data, name)
    if not len(scores.users):
        notes.append(f"no user of the {name} split has a held-out item the run knows: no metrics by user activity")
        return {}
    return {"split": name, "rec": by_activity(scores)}
