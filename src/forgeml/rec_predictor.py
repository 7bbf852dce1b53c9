"""A recommendation run rebuilt from its bundle: ids in, ranked items out (what forgeml.load returns for a run whose
config sets data.users and data.items; Predictor(path) gives this class for such a bundle).

    model = forgeml.load("runs/msweb-mf")
    model.recommend("10001", k=5)          # [{'item': '1008', 'score': 3.1, 'rank': 1}, ...], seen items left out
    model.recommend_many(["10001", "10002"], k=5, exclude_seen=False)
    model.predict([{"user": "10001", "item": "1008"}])   # [{'user': '10001', 'item': '1008', 'score': 3.1}]
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgeml.bundle import Bundle
from forgeml.config import Config
from forgeml.data.rec_features import RecFeatures
from forgeml.errors import BundleError, RequestError
from forgeml.predictor import Predictor

SEEN_FILE = "seen.safetensors"


class UnknownUser(RequestError):
    """A user id the run never trained on."""


class UnknownItem(RequestError):
    """An item id the run never trained on."""


def is_recommendation_bundle(path: str | Path) -> bool:
    """Whether the run folder holds a recommendation run (its config sets data.users); False when it cannot tell."""
    try:
        data = (Bundle(path).read_config_dict() or {}).get("data") or {}
    except Exception:  # a missing or damaged config.yaml: Predictor's own checks say what is wrong
        return False
    return bool(data.get("users")) and bool(data.get("items"))


class RecPredictor(Predictor):
    def __init__(self, path: str | Path, device: str = "cpu", trust_code: bool = False, backend: str | None = None):
        if backend not in (None, "torch"):
            raise RequestError(f"backend {backend!r}: a recommendation run runs in PyTorch only (no ONNX export of it)")
        self.bundle = Bundle.open(path)
        try:
            self.config = Config.model_validate(self.bundle.read_config_dict())
        except Exception as exc:
            raise BundleError(f"{self.bundle.file('config.yaml')}: not a valid config for this forgeml ({exc})") from None
        try:
            self.features = RecFeatures.from_json(self.bundle.read_json("features.json"))
        except Exception as exc:
            raise BundleError(f"{self.bundle.file('features.json')}: {exc}") from None
        from forgeml.models.recommenders import build_recommender

        weights = self.bundle.load_weights()
        # two_tower's per-id feature tensors are buffers in the weights: "user_tower.side.user0" -> "user0"
        side = {k.rsplit(".", 1)[1]: v for k, v in weights.items() if ".side." in k}
        self.model = build_recommender(self.config.model, self.features, side=side)
        try:
            self.model.load_state_dict(weights)
        except RuntimeError as exc:
            raise BundleError(f"{self.bundle.file('model.safetensors')}: weights do not fit the model in config.yaml ({exc})") from None
        self.device = torch.device(device)
        self.model.to(self.device).eval()
        seen = self.bundle.load_weights(SEEN_FILE)
        self.seen_indptr, self.seen_indices = seen["indptr"].numpy(), seen["indices"].numpy()
        self.backend, self.session, self._decoder = "torch", None, None
        self._items_cache: torch.Tensor | None = None

    @property
    def task(self) -> str:
        return "recommend"

    @property
    def classes(self) -> None:
        return None

    @property
    def tokenizer(self) -> None:
        return None

    # ------------------------------------------------------------------ scores
    @torch.no_grad()
    def item_vectors(self) -> torch.Tensor:
        """Every item's vector (N, D), computed once."""
        if self._items_cache is None:
            self._items_cache = self.model.item_vectors(torch.arange(len(self.features.items), device=self.device)).float()
        return self._items_cache

    @torch.no_grad()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Scores of every item for user indices (B,): one matrix product, (B, N)."""
        u = self.model.user_vectors(users.to(self.device)).float()  # (B, D)
        return (u @ self.item_vectors().T).cpu()  # (B, N)

    @torch.no_grad()
    def score_pairs(self, users: np.ndarray, items: np.ndarray, batch_size: int | None = None) -> np.ndarray:
        """The score (a predicted rating, for explicit runs) of each (user index, item index) pair."""
        batch_size = batch_size or self.config.eval.batch_size
        parts = []
        for i in range(0, len(users), batch_size):
            x = {"user": torch.from_numpy(np.asarray(users[i:i + batch_size])).to(self.device),
                 "item": torch.from_numpy(np.asarray(items[i:i + batch_size])).to(self.device)}
            out = self.model(x)
            parts.append((out["user"].float() * out["item"].float()).sum(-1).cpu().numpy())
        return np.concatenate(parts) if parts else np.zeros(0, np.float32)

    # ------------------------------------------------------------------ ids
    @property
    def cold_start(self) -> bool:
        """Whether a new user can be scored from its features: two_tower, model.id_dim 0, data.user_features."""
        return (self.config.model.name == "two_tower" and self.config.model.id_dim == 0
                and bool(self.features.user_features))

    def user_index(self, user: Any) -> int:
        key = _id(user)
        if key not in self.features.user_index:
            if self.cold_start:
                names = ", ".join(f.name for f in self.features.user_features)
                how = f"pass the user's features for a cold start: recommend(user, features={{{names}}})"
            else:
                how = (f"a {self.config.model.name} model has no vector for a new user: recommend to known users (forgeml "
                       f"recommend {self.path} --user ID), fall back to the most popular items, or retrain with them "
                       "(a two_tower with model.id_dim 0 and data.user_features scores new users from their features)")
            raise UnknownUser(f"user {key!r} is not among the {len(self.features.users):,} users {self.path} was trained "
                              f"on; {how}")
        return self.features.user_index[key]

    def item_index(self, item: Any) -> int:
        key = _id(item)
        if key not in self.features.item_index:
            raise UnknownItem(f"item {key!r} is not among the {len(self.features.items):,} items {self.path} was trained on")
        return self.features.item_index[key]

    def seen(self, user: Any) -> list[str]:
        """The user's training items (raw ids)."""
        u = self.user_index(user)
        return [self.features.items[i] for i in self.seen_indices[self.seen_indptr[u]:self.seen_indptr[u + 1]]]

    # ------------------------------------------------------------------ recommend
    def recommend(self, user: Any, k: int = 10, exclude_seen: bool = True, features: dict[str, Any] | None = None
                  ) -> list[dict[str, Any]]:
        """The k best items for one user: [{"item": raw id, "score": float, "rank": 1..k}], best first.

        Args:
            user: a raw user id as in the training data (a number or a string).
            k: how many items (default 10; fewer when the catalogue, less the seen items, is smaller).
            exclude_seen: leave out the items the user interacted with in training (default True).

            features: a user training never saw, described by its data.user_features columns ({"age": 31, ...}):
                scored from them (cold start) when the run is a two_tower with model.id_dim 0; it has seen nothing.

        An id training never saw (without usable features) is an UnknownUser error (a RequestError) that says what to do.

        >>> forgeml.load("runs/msweb-mf").recommend("10001", k=3)   # doctest: +SKIP
        """
        if features is not None and _id(user) not in self.features.user_index:
            return self._recommend_cold(user, features, k)
        return self.recommend_many([user], k, exclude_seen)[0]

    @torch.no_grad()
    def _recommend_cold(self, user: Any, features: dict[str, Any], k: int) -> list[dict[str, Any]]:
        from forgeml.data.featureset import FeatureSet

        if not self.cold_start:
            self.user_index(user)  # raises UnknownUser, saying what this run can do
        if not isinstance(features, dict):
            raise RequestError(f"features: give the new user's columns as a dict, e.g. {{{self.features.user_features[0].name!r}: ...}}")
        feats = FeatureSet(self.features.user_features, [])
        missing = [f.name for f in self.features.user_features if f.name not in features]
        if missing:
            raise RequestError(f"features: the new user {_id(user)!r} needs {', '.join(missing)} (the run's data.user_features)")
        cols = feats.rows_to_columns([features], origin=f"user {_id(user)!r}")
        x = {name: t.to(self.device) for name, t in feats.transform_inputs(cols).items()}
        u = self.model.user_vectors_from_features(x).float()  # (1, D)
        return self._top((u @ self.item_vectors().T).cpu(), k)[0]

    def _top(self, scores: torch.Tensor, k: Any) -> list[list[dict[str, Any]]]:
        """The k best of each row of (B, N) scores (-inf: left out), as recommend returns them."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RequestError(f"k {k!r}: give how many items to recommend, a whole number >= 1")
        top = scores.topk(min(int(k), scores.shape[1]), dim=1)
        return [[{"item": self.features.items[i], "score": float(v), "rank": r + 1}
                 for r, (v, i) in enumerate(zip(values, items)) if v != float("-inf")]
                for values, items in zip(top.values.tolist(), top.indices.tolist())]

    def recommend_many(self, users: Iterable[Any], k: int = 10, exclude_seen: bool = True) -> list[list[dict[str, Any]]]:
        """recommend() for several users at once (one matrix product for them all); a list per user, in order."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise RequestError(f"k {k!r}: give how many items to recommend, a whole number >= 1")
        users = list(users)
        if not users:
            return []
        index = np.array([self.user_index(u) for u in users], dtype=np.int64)
        out = []
        for start in range(0, len(index), self.config.eval.batch_size):
            chunk = index[start:start + self.config.eval.batch_size]
            s = self.score_users(torch.from_numpy(chunk))  # (B, N)
            if exclude_seen:
                from forgeml.evaluation.ranking import csr_mask

                s = s.masked_fill(csr_mask(self.seen_indptr, self.seen_indices, chunk, s.shape[1]), float("-inf"))
            out += self._top(s, k)
        return out

    def predict(self, inputs: Any) -> list[dict[str, Any]]:
        """Scores of (user, item) pairs: rows {data.users: id, data.items: id} (or {"user", "item"}); for a ratings run
        the score is the predicted rating (clipped to data.rating_range when it is set)."""
        rows = [inputs] if isinstance(inputs, dict) else list(inputs)
        ucol, icol = self.config.data.users, self.config.data.items
        pairs = []
        for row in rows:
            if not isinstance(row, dict):
                raise RequestError(f"predict takes rows {{{ucol!r}: user id, {icol!r}: item id}}; got {type(row).__name__}")
            u = row.get(ucol, row.get("user"))
            i = row.get(icol, row.get("item"))
            if u is None or i is None:
                raise RequestError(f"each row needs a user ({ucol!r}) and an item ({icol!r}); got keys {', '.join(row) or 'none'}")
            pairs.append((u, i))
        users = np.array([self.user_index(u) for u, _ in pairs], dtype=np.int64)
        items = np.array([self.item_index(i) for _, i in pairs], dtype=np.int64)
        s = self.score_pairs(users, items)
        if self.features.rating_range is not None:
            s = np.clip(s, *self.features.rating_range)
        return [{"user": _id(u), "item": _id(i), "score": float(v)} for (u, i), v in zip(pairs, s)]

    def explain(self, *args, **kwargs):
        raise RequestError(f"{self.path}: explanations (Captum) cover networks over input columns; a recommendation run's "
                           "score is a dot product of user and item vectors, not explained per column")

    def __repr__(self) -> str:
        return (f"Predictor({str(self.path)!r}, task=recommend, users={len(self.features.users)}, "
                f"items={len(self.features.items)})")


def _id(value: Any) -> str:
    """A raw id as training keyed it: 10001, 10001.0 and '10001' are the same user."""
    if isinstance(value, (float, np.floating)) and float(value).is_integer():
        return str(int(value))
    if isinstance(value, (int, np.integer)) and not isinstance(value, bool):
        return str(int(value))
    return str(value).strip()
