"""Matrix factorisation: a vector and a bias per user and per item, and a global bias.

    score(u, i) = mu + b_u + b_i + p_u . q_i

Every recommender here has one shape (models/recommenders.py): forward({"user": (B,), "item": (B,)}) returns the
user's and the item's vectors, {"user": (B, D), "item": (B, D)}, whose row-wise dot product is the score. MF folds its
biases into those vectors (user [p_u, 1, mu + b_u], item [q_i, b_i, 1]), so that ranking every item for a batch of
users is one matrix product, users @ items.T, biases included.
"""

from __future__ import annotations

import torch
from torch import nn


class MatrixFactorization(nn.Module):
    def __init__(self, n_users: int, n_items: int, dim: int = 32, biases: bool = True, init_std: float = 0.05, reg: float = 0.0):
        super().__init__()
        self.n_users, self.n_items, self.biases, self.reg = n_users, n_items, biases, reg
        self.user_vec = nn.Embedding(n_users, dim)
        self.item_vec = nn.Embedding(n_items, dim)
        nn.init.normal_(self.user_vec.weight, std=init_std)
        nn.init.normal_(self.item_vec.weight, std=init_std)
        if biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            self.global_bias = nn.Parameter(torch.zeros(1))
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def user_vectors(self, users: torch.Tensor) -> torch.Tensor:
        p = self.user_vec(users)  # (B, dim)
        if not self.biases:
            return p
        ones = torch.ones_like(p[:, :1])
        return torch.cat([p, ones, self.global_bias + self.user_bias(users)], dim=1)  # (B, dim + 2)

    def item_vectors(self, items: torch.Tensor) -> torch.Tensor:
        q = self.item_vec(items)  # (N, dim)
        if not self.biases:
            return q
        ones = torch.ones_like(q[:, :1])
        return torch.cat([q, self.item_bias(items), ones], dim=1)  # (N, dim + 2)

    def forward(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = {"user": self.user_vectors(x["user"]), "item": self.item_vectors(x["item"])}
        if self.reg and self.training:  # the L2 penalty of these interactions' parameters, which the training loss adds
            u, i = x["user"], x["item"]
            squares = self.user_vec(u).pow(2).sum(-1) + self.item_vec(i).pow(2).sum(-1)  # (B,)
            if self.biases:
                squares = squares + self.user_bias(u).pow(2).sum(-1) + self.item_bias(i).pow(2).sum(-1)
            out["penalty"] = self.reg * squares.mean()
        return out

    def set_global_bias(self, mean: float) -> None:
        """Start the global bias at the training ratings' mean (explicit feedback): the vectors then learn deviations."""
        if self.biases:
            with torch.no_grad():
                self.global_bias.fill_(mean)
