"""Differentially private training (DP-SGD) through Opacus: the PrivateTrainer, and the noise plan behind it.

DP-SGD changes three things in a step, and nothing else in the loop:
  1. the batch is a Poisson draw (every training row joins with probability q on its own: data/poisson.py), the
     sampling the accountant's amplification bound assumes;
  2. each row's gradient is computed on its own (Opacus's GradSampleModule hooks) and clipped to max_grad_norm;
  3. the clipped gradients are summed, Gaussian noise of std noise_multiplier x max_grad_norm is added, and the
     sum is divided by the expected batch q x N (Opacus's DPOptimizer). The optimizer then steps as usual.
The noise multiplier is chosen before the first step, by the accountant (RDP or PRV), as the smallest that keeps the
epsilon of the PLANNED steps (train.max_steps, else epochs x round(N / batch_size)) within the target; the
accountant then counts every step actually taken, and the epsilon it reports is the one spent.

Opacus is imported inside the functions that need it (`import forgeml` stays instant). This module knows nothing of
YAML: the Trainer's TrainConfig (train.privacy) or plain arguments.
"""

from __future__ import annotations

import functools
import math
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from forgeml.data.tensor_dict import n_rows
from forgeml.errors import ConfigError, ForgeError
from forgeml.notes import note
from forgeml.training.strategy import Single
from forgeml.training.trainer import Trainer

INSTALL = "pip install 'forgeml[privacy]'"


def require_opacus():
    """The opacus module; a ForgeError naming the extra to install when it is missing."""
    import logging
    import warnings

    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # its import warns about secure RNG, which forgeml seeds itself (see docs)
            import opacus
    except ImportError as exc:
        raise ForgeError(f"train.privacy needs Opacus ({exc.name} is not installed): {INSTALL}") from None
    finally:  # opacus.utils.module_utils calls logging.basicConfig on import: every note would print twice, timestamped
        root.handlers[:] = handlers
        root.setLevel(level)
    return opacus


# ------------------------------------------------------------------------------------------------ the plan
@dataclass
class PrivacyPlan:
    """How a private run draws its batches and how much noise it adds, fixed before the first step."""

    rows: int  # N, the training rows
    sample_rate: float  # q: each row's chance to be in a step's batch
    steps_per_epoch: int  # round(1 / q) draws make an epoch: about N rows
    steps: int  # the planned steps the budget is spread over
    noise_multiplier: float  # sigma: noise std / max_grad_norm
    epsilon: float  # the target
    delta: float
    max_grad_norm: float
    accountant: str

    @property
    def expected_batch(self) -> float:
        return self.sample_rate * self.rows


def plan_noise(rows: int, batch_size: int, epochs: int, max_steps: int | None, epsilon: float, delta: float,
               max_grad_norm: float, accountant: str = "rdp") -> PrivacyPlan:
    """The noise multiplier for (epsilon, delta) over the planned steps of a run on `rows` rows drawn `batch_size` at a
    time (q = 1 / ceil(rows / batch_size), the rate Opacus's DPDataLoader uses). A budget that cannot be met is a
    ConfigError that says why and what to change."""
    if rows < 2:
        raise ConfigError(f"train.privacy: the training split has {rows} row(s); differential privacy needs many rows")
    if delta >= 1 / rows:
        raise ConfigError(f"train.privacy.delta: {delta:g} is not below 1 / training rows = 1/{rows} = {1 / rows:.3g}; "
                          f"a delta that large lets a mechanism publish a whole row. Use delta <= {_round_down(0.1 / rows)}")
    steps_per_epoch = math.ceil(rows / batch_size)
    sample_rate = 1 / steps_per_epoch
    steps = max_steps or steps_per_epoch * epochs
    try:
        sigma = noise_for(epsilon, delta, sample_rate, steps, accountant)
    except ValueError:  # the search passed its largest noise (1e6) and the epsilon was still above the target
        raise ConfigError(f"train.privacy.epsilon: {epsilon:g} cannot be met at delta {delta:g} over {steps} steps (sample rate "
                          f"{sample_rate:.3g}) with any noise the {accountant} accountant can bound; raise epsilon "
                          f"(the {accountant} bound needs about epsilon >= {math.log(1 / delta) / 62:.2g} at this delta), or "
                          "raise delta") from None
    return PrivacyPlan(rows, sample_rate, steps_per_epoch, steps, sigma, epsilon, delta, max_grad_norm, accountant)


def plan_share(rows: int, batch_size: int, epochs: int, max_steps: int | None, epsilon: float, delta: float,
               max_grad_norm: float, accountant: str = "rdp", rounds: int = 1) -> PrivacyPlan:
    """plan_noise for `rounds` alike fits of `epochs` epochs (or max_steps steps) each, at the same sample rate: the
    budget covers all of them (a federated client's rounds). rounds=1 is plan_noise."""
    return plan_noise(rows, batch_size, epochs * rounds, max_steps * rounds if max_steps else None, epsilon, delta,
                      max_grad_norm, accountant)


MAX_SIGMA = 1e6  # Opacus's get_noise_multiplier gives up there too


@functools.lru_cache(maxsize=64)  # a run plans twice (before its folder exists, and at fit): the second is free
def noise_for(epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str, tolerance: float = 0.005) -> float:
    """The smallest noise multiplier (to `tolerance` x epsilon, in epsilon) whose `steps` steps at `sample_rate` spend at most
    `epsilon`. Opacus's get_noise_multiplier searches the same way but from sigma 0, where each RDP evaluation is slow
    (seconds per plan on a small set): this brackets from sigma 1 by doubling/halving first, so every evaluation is
    near the answer. ValueError when no noise up to MAX_SIGMA meets the budget."""
    import warnings

    require_opacus()
    from opacus.accountants import create_accountant

    counter = create_accountant(mechanism=accountant)

    def eps(sigma: float) -> float:
        counter.history = [(sigma, sample_rate, steps)]
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "optimal order is the largest alpha": the bound is looser, still a bound
            return float(counter.get_epsilon(delta=delta))

    if eps(MAX_SIGMA) > epsilon:  # no noise can do it: say so at once, not after twenty doublings
        raise ValueError("the privacy budget is too low")
    high = 1.0
    e_high = eps(high)
    while e_high > epsilon:
        high *= 2
        if high > MAX_SIGMA:
            raise ValueError("the privacy budget is too low")
        e_high = eps(high)
    low = high / 2
    while (e_low := eps(low)) <= epsilon and low > 1e-3:  # the answer is below: halve until the budget is exceeded
        high, e_high, low = low, e_low, low / 2
    while epsilon - e_high > tolerance * epsilon:
        mid = (low + high) / 2
        e_mid = eps(mid)
        if e_mid <= epsilon:
            high, e_high = mid, e_mid
        else:
            low = mid
    return high


def _round_down(x: float) -> str:
    return f"{10 ** math.floor(math.log10(x)):g}"


def spent_epsilon(history: list, delta: float, accountant: str) -> float:
    """The epsilon an accountant's history (a list of (noise multiplier, sample rate, steps)) has spent at `delta`."""
    require_opacus()
    from opacus.accountants import create_accountant

    counter = create_accountant(mechanism=accountant)
    counter.history = [tuple(h) for h in history]
    return float(counter.get_epsilon(delta=delta)) if history else 0.0


# ------------------------------------------------------------------------------------------------ the model
def make_compatible(model: nn.Module, say=note) -> nn.Module:
    """The model as DP-SGD can train it, in place where possible: batch norm becomes group norm (said), LSTM/GRU
    become Opacus's DPLSTM/DPGRU (same weights, same names in the saved state), and every layer that holds trainable
    parameters must be one Opacus computes per-sample gradients for: any other is a ConfigError naming it."""
    require_opacus()
    from opacus.grad_sample import GradSampleModule
    from opacus.layers import DPGRU, DPLSTM, DPRNN
    from opacus.validators import ModuleValidator

    from forgeml.models.group_norm import replace_batch_norm

    replaced = replace_batch_norm(model)
    if replaced:
        say(f"train.privacy: batch norm mixes the rows of a batch, which DP-SGD cannot bound; replaced by group norm at "
            f"{', '.join(replaced)} (the bundle rebuilds it the same way)")
    rnns = [name for name, m in model.named_modules() if type(m) in (nn.LSTM, nn.GRU, nn.RNN)]
    if rnns:
        model = ModuleValidator.fix(model)  # deep copies: LSTM -> DPLSTM, GRU -> DPGRU, RNN -> DPRNN, same parameter names
        say(f"train.privacy: {', '.join(rnns)} run as Opacus's DP recurrent layers (per-sample gradients)")
    supported = set(GradSampleModule.GRAD_SAMPLERS) | {DPRNN, DPLSTM, DPGRU}
    bad = []

    def walk(name: str, module: nn.Module) -> None:
        own = [n for n, p in module.named_parameters(recurse=False) if p.requires_grad]
        if own and type(module) not in supported:
            bad.append(f"{name or 'the model'} ({type(module).__name__}: its own parameters {', '.join(own)})")
            return
        if type(module) in (DPRNN, DPLSTM, DPGRU):
            return
        for child_name, child in module.named_children():
            walk(f"{name}.{child_name}" if name else child_name, child)

    walk("", model)
    if bad:
        raise ConfigError("train.privacy: Opacus cannot compute per-sample gradients for " + "; ".join(bad[:4])
                          + (" ..." if len(bad) > 4 else "") + ". Private training supports Linear, Conv, Embedding, "
                          "LayerNorm/GroupNorm and LSTM/GRU layers: the mlp, cnn, rnn and conv1d/gru/lstm models and a concat "
                          "combiner (docs/privacy.md); freeze that layer with train.freeze, or choose one of those models")
    errors = [e for e in ModuleValidator.validate(model, strict=False)]
    if errors:
        raise ConfigError(f"train.privacy: the model cannot train privately: {errors[0]}")
    return model


def plain_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """The weights under the names the plain network has: a DPLSTM's state holds each weight twice (weight_ih_l0 and its
    cell's l0.ih.weight); the bundle keeps nn.LSTM's names only, so it loads without Opacus."""
    from opacus.layers.dp_rnn import DPRNNBase

    state = model.state_dict()
    for name, module in model.named_modules():
        if isinstance(module, DPRNNBase):
            prefix = f"{name}." if name else ""
            own = {f"{prefix}{k}" for k, _ in module.named_parameters(recurse=False)}
            for key in [k for k in state if k.startswith(prefix) and k not in own]:
                del state[key]
    return state


class PrivateSingle(Single):
    """One process; the best weights kept under the plain network's names (plain_state_dict)."""

    def full_state_dict(self, model: nn.Module) -> dict[str, torch.Tensor]:
        return plain_state_dict(model)

    def restore_weights(self, model: nn.Module, path: Path) -> None:
        from forgeml.bundle import load_safetensors

        missing, unexpected = model.load_state_dict(load_safetensors(path), strict=False)
        if unexpected or set(missing) - set(model.state_dict()) or set(plain_state_dict(model)) & set(missing):
            raise RuntimeError(f"{path}: the best weights do not fit the model (missing {missing[:3]}, unexpected {unexpected[:3]})")


# ------------------------------------------------------------------------------------------------ the trainer
class PrivateTrainer(Trainer):
    """The Trainer with DP-SGD: same loop, same callbacks and checkpoints; train.privacy says the budget.

        trainer = PrivateTrainer(model, "cross_entropy", epochs=3, privacy={"epsilon": 3, "delta": 1e-5})
        trainer.fit((x, y), (x_val, y_val))
        trainer.privacy_spent()   # {"epsilon": 2.99, "delta": 1e-05, "noise_multiplier": 1.1, ...}

    Differences from the Trainer: the training data must be in memory as tensors (an (x, y) pair or a TensorBatcher);
    each epoch is round(N / batch_size) Poisson draws; training is fp32 and not compiled; one process; fit() runs once
    (its budget is the whole run's). The model given is changed in place (make_compatible): batch norm -> group norm.
    """

    private = True

    def __init__(self, model: nn.Module, loss_fn=None, optimizer=None, **kwargs: Any):
        if isinstance(optimizer, torch.optim.Optimizer):
            raise ConfigError("train.privacy: pass the optimizer by name; a ready optimizer holds the parameters of the model "
                              "before its layers are made private (batch norm -> group norm)")
        import warnings

        # Opacus's backward hook on the first layer, whose input (the data) needs no gradient: expected, not a problem
        warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")
        kwargs.update(compile=False, precision="fp32")  # Opacus's hooks: no torch.compile; per-sample clipping in fp32
        model = make_compatible(model)
        super().__init__(model, loss_fn, optimizer, **kwargs)
        p = self.cfg.privacy
        if p is None:
            raise ConfigError("PrivateTrainer: train.privacy is not set; give privacy={'epsilon': 3, 'delta': 1e-5}")
        if self.strategy.world > 1:
            raise ConfigError(f"train.privacy: private training runs in one process, not {self.strategy.world}; "
                              "train without --nproc/torchrun")
        from opacus.accountants import create_accountant
        from opacus.grad_sample import GradSampleModule
        from opacus.optimizers import DPOptimizer

        self.strategy = PrivateSingle(self.device)
        # the sampling and the noise come from a seed nobody else knows (config.yaml names train.seed, which seeds the
        # weights and dropout): kept in the checkpoint only, so a resume draws what the stopped run would have
        self.secret_seed = p.seed if p.seed is not None else secrets.randbits(62)
        self.noise = torch.Generator(device=self.device).manual_seed(self.secret_seed)
        self.step_model = GradSampleModule(self.model, batch_first=True, loss_reduction="mean")  # hooks on self.model
        self.optimizer = DPOptimizer(self.optimizer, noise_multiplier=0.0, max_grad_norm=p.max_grad_norm,
                                     expected_batch_size=1, loss_reduction="mean", generator=self.noise)
        self.accountant = create_accountant(mechanism=p.accountant)
        self.plan: PrivacyPlan | None = None
        self.share: tuple[int, int] | None = None  # (rounds, done): share_budget
        self.optimizer.attach_step_hook(lambda opt: self.accountant.step(noise_multiplier=opt.noise_multiplier,
                                                                         sample_rate=self.plan.sample_rate))

    def share_budget(self, rounds: int, done: int) -> PrivateTrainer:
        """Make this fit one share of a run of `rounds` alike fits (a federated client's rounds, federate/local.py), of which
        `done` came before: the noise is planned so that all `rounds` x (this fit's planned steps) spend at most the target
        epsilon (plan_share), and the accountant starts with the `done` earlier fits' steps, so epsilon_spent() and
        privacy_spent() after this fit are the cumulative epsilon of the `done` + 1 fits. Call before fit()."""
        if rounds < 1 or not 0 <= done < rounds:
            raise ConfigError(f"PrivateTrainer.share_budget: round {done + 1} of {rounds} is not a round of the plan")
        if self.fits:
            raise ConfigError("PrivateTrainer.share_budget: call it before fit()")
        self.share = (rounds, done)
        return self

    def plan_for(self, rows: int) -> PrivacyPlan:
        """The noise plan of a run on `rows` training rows (a ConfigError when the budget cannot be met); with
        share_budget, the plan of all its rounds (plan.steps counts them all)."""
        p, cfg = self.cfg.privacy, self.cfg
        return plan_share(rows, cfg.batch_size, cfg.epochs, cfg.max_steps, p.epsilon, p.delta, p.max_grad_norm, p.accountant,
                          rounds=self.share[0] if self.share else 1)

    def fit(self, train_data, val_data=None, resume: bool = False):
        if self.fits:
            raise ConfigError("train.privacy: a private Trainer trains once; its budget was planned for that run. Train "
                              "further in a new run (and add the two epsilons: budgets compose)")
        train = self._poisson(train_data)
        self.plan = self.plan_for(train.n_samples)
        self.optimizer.noise_multiplier = self.plan.noise_multiplier
        self.optimizer.expected_batch_size = self.plan.expected_batch
        if self.share and self.share[1] and not resume:
            # the earlier rounds, as the accountant would have counted them: each drew from the same rows with the same
            # config, so each took exactly this fit's planned steps at this same noise multiplier and sample rate; the
            # history below is theirs exactly (not an estimate), and the epsilon after this fit is the composition of all
            # of them (a round the client sat out is counted too: an upper bound then, still a guarantee)
            rounds, done = self.share
            self.accountant.history = [(self.plan.noise_multiplier, self.plan.sample_rate, done * (self.plan.steps // rounds))]
        share = f" ({self.share[0]} rounds of {self.plan.steps // self.share[0]}; this is round {self.share[1] + 1})" if self.share else ""
        note(f"train.privacy: DP-SGD, target epsilon {self.plan.epsilon:g} at delta {self.plan.delta:g} over {self.plan.steps} "
             f"steps{share}: noise multiplier {self.plan.noise_multiplier:.3g}, each row in a step's batch with probability "
             f"{self.plan.sample_rate:.3g} (about {self.plan.expected_batch:.0f} rows), per-row gradients clipped to "
             f"{self.plan.max_grad_norm:g} ({self.plan.accountant} accountant)")
        return super().fit(train, val_data, resume=resume)

    def _poisson(self, data):
        """The training rows as Poisson draws (data/poisson.py) seeded by the secret seed."""
        from forgeml.data.batcher import TensorBatcher
        from forgeml.data.poisson import PoissonBatcher
        from forgeml.data.tensor_dict import is_tensors

        if isinstance(data, PoissonBatcher):
            return data
        augment = augment_key = None
        if isinstance(data, (tuple, list)) and len(data) == 2 and all(is_tensors(t) for t in data):
            x, y = data
        elif isinstance(data, TensorBatcher) or (hasattr(data, "x") and hasattr(data, "y") and hasattr(data, "epoch")):
            x, y = data.x, data.y
            augment, augment_key = getattr(data, "augment", None), getattr(data, "augment_key", None)
        else:
            raise ConfigError("train.privacy: private training draws each step's rows itself (Poisson sampling), so the "
                              f"training data must be in memory as tensors (an (x, y) pair or a TensorBatcher), not a {type(data).__name__}")
        steps = math.ceil(n_rows(y) / self.cfg.batch_size)
        return PoissonBatcher(x, y, 1 / steps, steps, seed=self.secret_seed, augment=augment, augment_key=augment_key,
                              device=self.device)

    def train_step(self, x, y) -> torch.Tensor:
        if n_rows(y) == 0:  # a Poisson draw took no row (rare: (1 - q)^N): the step adds noise only, as Opacus's does
            for p in self.model.parameters():
                if p.requires_grad:
                    p.grad_sample = p.new_zeros((0, *p.shape))
            return torch.zeros((), device=self.device)
        return super().train_step(x, y)

    def _call(self, event: str, *args) -> None:
        if event == "on_log" and args and args[0].get("split") == "train":
            args[0]["epsilon"] = round(self.epsilon_spent(), 4)  # history.jsonl: the epsilon spent by that step
        super()._call(event, *args)

    # ---------------------------------------------------------------------------------------- the budget
    def epsilon_spent(self) -> float:
        import warnings

        if not self.accountant.history:
            return 0.0
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "optimal order is the largest alpha" early in a run: a looser bound, still a bound
            return float(self.accountant.get_epsilon(delta=self.cfg.privacy.delta))

    def privacy_spent(self) -> dict[str, Any]:
        """What the bundle records: the epsilon spent by the steps taken, and how it was spent."""
        plan = asdict(self.plan) if self.plan is not None else {}
        return {"epsilon": round(self.epsilon_spent(), 4), "target_epsilon": self.cfg.privacy.epsilon,
                "delta": self.cfg.privacy.delta, "noise_multiplier": plan.get("noise_multiplier"),
                "max_grad_norm": self.cfg.privacy.max_grad_norm, "sample_rate": plan.get("sample_rate"),
                "expected_batch": round(self.plan.expected_batch, 2) if self.plan else None, "rows": plan.get("rows"),
                "steps": self.steps_counted(), "planned_steps": plan.get("steps"), "accountant": self.cfg.privacy.accountant,
                "sampling": "poisson", **({"rounds": self.share[0], "round": self.share[1] + 1} if self.share else {})}

    def steps_counted(self) -> int:
        """The steps the accountant holds: this fit's, and with share_budget the earlier rounds' too."""
        return sum(int(h[2]) for h in self.accountant.history) if self.share else self.step

    # ---------------------------------------------------------------------------------------- checkpoints
    def _checkpoint_extra(self) -> dict[str, Any]:
        return {"privacy": {"history": [list(h) for h in self.accountant.history], "seed": self.secret_seed,
                            "noise": self.noise.get_state(), "noise_multiplier": self.optimizer.noise_multiplier}}

    def _load_checkpoint_extra(self, state: dict[str, Any]) -> None:
        from forgeml.errors import BundleError

        saved = state.get("privacy")
        if saved is None:
            raise BundleError("checkpoints/last.pt has no privacy accountant: the run was not trained privately")
        if not math.isclose(saved["noise_multiplier"], self.optimizer.noise_multiplier, rel_tol=1e-9):
            raise BundleError(f"checkpoints/last.pt: the run planned noise multiplier {saved['noise_multiplier']:.6g}, this resume "
                              f"{self.optimizer.noise_multiplier:.6g}; resume with the run's own data and config")
        self.accountant.history = [tuple(h) for h in saved["history"]]
        self.secret_seed = saved["seed"]
        self.train_batches.seed = saved["seed"]
        self.noise.set_state(saved["noise"])
