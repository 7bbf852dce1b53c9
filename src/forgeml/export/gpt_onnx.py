"""The GPT in ONNX with its key/value cache as graph inputs and outputs, so that generation through ONNX Runtime
feeds one new token per step instead of recomputing the prefix.

    forgeml export runs/shakespeare-gpt --format onnx       # RUN/model.onnx: this graph, verified on data/val.bin

The graph (docs/contract.md names; one `past`/`present` pair per layer i):

    in   text            (B, T)               int64 token ids, positions P .. P+T-1
         past_key_i      (B, n_head, P, hs)   P = 0 on the first call (an empty past)
         past_value_i    (B, n_head, P, hs)
    out  next_token      (B, T, vocab)        logits (the next_token output's name)
         present_key_i   (B, n_head, P+T, hs) past and new keys: the next call's past
         present_value_i (B, n_head, P+T, hs)

CachedGPT computes what models/gpt.py's cached path computes (new keys after the past ones, the new block causal
within itself and seeing every past position) from the same modules, with the cache as tensors rather than a
preallocated KVCache: the exporter traces tensors in, tensors out. Export verifies it on held-out windows of
RUN/data/val.bin twice (no past; the second half of each window after a past of its first half) against the
PyTorch network; OnnxDecoder is the ONNX Runtime side of models/generation.py's Decoder.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from forgeml.errors import BundleError
from forgeml.export.onnx import ExportError, Graph, Verified, compare, run_session
from forgeml.models.generation import next_token_parts


def past_names(n_layer: int) -> list[str]:
    return [f"past_{kv}_{i}" for i in range(n_layer) for kv in ("key", "value")]


def present_names(n_layer: int) -> list[str]:
    return [f"present_{kv}_{i}" for i in range(n_layer) for kv in ("key", "value")]


class CachedGPT(nn.Module):
    """A language-model Network's forward with the cache as tensors: a dict with `text` and every past_* in,
    a dict with the logits and every present_* out. Same modules (so the same weights) as the Network."""

    def __init__(self, network: nn.Module):
        super().__init__()
        self.gpt, self.key, self.head = next_token_parts(network)
        self.combiner, self.output_name = network.combiner, network.output_names[0]
        cfg = self.gpt.cfg
        self.n_layer, self.n_head, self.head_size = cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head
        self.input_names = [self.key, *past_names(self.n_layer)]
        self.output_names = [self.output_name, *present_names(self.n_layer)]

    def empty_past(self, batch: int, dtype: torch.dtype = torch.float32) -> dict[str, torch.Tensor]:
        """The first call's past: no positions yet."""
        return {n: torch.zeros(batch, self.n_head, 0, self.head_size, dtype=dtype) for n in past_names(self.n_layer)}  # (B, nh, 0, hs)

    def forward(self, inputs: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        idx = inputs[self.key]
        B, T = idx.shape
        P = inputs["past_key_0"].shape[2]  # positions already seen
        g = self.gpt
        pos = torch.arange(P, P + T, device=idx.device)  # (T,): positions continue after the past
        x = g.wte(idx) + g.wpe(pos)  # (B, T, C); dropout is off in eval
        C = x.shape[-1]
        # causal within the new block, every past position visible (models/gpt.py's mask for a prompt after a cache)
        mask = torch.ones(T, P + T, dtype=torch.bool, device=idx.device).tril(diagonal=P)  # (T, P+T)
        out = {}
        for i, block in enumerate(g.blocks):
            attn = block.attn
            q, k, v = attn.qkv(block.ln1(x)).split(C, dim=2)  # each (B, T, C)
            q = q.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
            k = k.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
            v = v.view(B, T, self.n_head, self.head_size).transpose(1, 2)  # (B, nh, T, hs)
            k = torch.cat([inputs[f"past_key_{i}"], k], dim=2)  # (B, nh, P+T, hs)
            v = torch.cat([inputs[f"past_value_{i}"], v], dim=2)  # (B, nh, P+T, hs)
            y = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)  # (B, nh, T, hs)
            y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C): heads side by side again
            x = x + attn.proj(y)
            x = x + block.mlp(block.ln2(x))
            out[f"present_key_{i}"], out[f"present_value_{i}"] = k, v
        logits = self.head(self.combiner([g.ln_f(x)]))  # (B, T, V); the combiner of one input passes it through
        return {self.output_name: logits, **out}


def kv_axes(cached: CachedGPT) -> dict[str, dict[int, str]]:
    """Batch everywhere, the new tokens' length on `text`, the past's length on every past_*."""
    axes = {cached.key: {0: "batch", 1: "text_length"}}
    for name in past_names(cached.n_layer):
        axes[name] = {0: "batch", 2: "past_length"}
    return axes


def export_sample(cached: CachedGPT, windows: torch.Tensor) -> dict[str, torch.Tensor]:
    """What the exporter traces: a few windows split into a past and a new block, both longer than 1 so that
    neither length is traced as a constant (sizes 0 and 1 are specialised by torch.export)."""
    rows = windows[:4]  # (b, T_max)
    T = rows.shape[1]
    P = max(2, T // 2)
    with torch.no_grad():
        past = cached({cached.key: rows[:, :P], **cached.empty_past(len(rows))})
    return {cached.key: rows[:, P:], **{p: past[q] for p, q in zip(past_names(cached.n_layer), present_names(cached.n_layer))}}


def val_windows(run: Path, features, rows: int) -> torch.Tensor:
    """The first `rows` non-overlapping windows (rows, block_size) of the run's held-out tokens RUN/data/val.bin."""
    from forgeml.data.corpus import open_tokens

    corpus = next(f for f in features.inputs if f.kind == "corpus")
    val = Path(run) / "data" / "val.bin"
    if not val.is_file():
        raise ExportError(f"{val}: the run has no held-out text to verify the export on; retrain with data.split.val above 0")
    tokens = open_tokens(val, corpus.tokenizer.vocab_size)
    T = corpus.block_size
    n = min(rows, len(tokens) // T)
    if n < 1:
        raise ExportError(f"{val}: fewer than {T} held-out tokens, not one window to verify the export on")
    return torch.from_numpy(np.asarray(tokens[: n * T], dtype=np.int64).reshape(n, T))  # (n, T)


def held_out_kv_inputs(run: Path, network: nn.Module, features, rows: int) -> dict[str, torch.Tensor]:
    """Held-out windows with an empty past: the graph's whole-window (no cache) call, as measured and verified."""
    cached = CachedGPT(network)
    windows = val_windows(run, features, rows)
    return {cached.key: windows, **cached.empty_past(len(windows))}


# ------------------------------------------------------------------------------------------------ verification
def verify_kv(session, network: nn.Module, windows: torch.Tensor, bounds: dict | None = None):
    """ONNX Runtime against PyTorch on held-out windows, both ways the graph is called: the whole window with no
    past (logits against the Network's, presents against models/gpt.py's KVCache), and the second half of each
    window after a past of its first half (logits against the Network's at those positions)."""
    import time

    from forgeml.models.gpt import KVCache

    start = time.perf_counter()
    cached = CachedGPT(network)
    network.eval()
    T = windows.shape[1]
    P = T // 2
    with torch.no_grad():
        want = network({cached.key: windows})[cached.output_name]  # (n, T, V): the plain forward, no cache at all
        cache = KVCache(cached.gpt.cfg, len(windows), windows.device, cached.gpt.wte.weight.dtype)
        cached.gpt({cached.key: windows}, cache)
    whole = run_session(session, {cached.key: windows, **cached.empty_past(len(windows))})
    checks = [compare(cached.output_name, whole[cached.output_name], want, bounds)]
    for i in range(cached.n_layer):
        checks.append(compare(f"present_key_{i}", whole[f"present_key_{i}"], cache.k[i], bounds))
        checks.append(compare(f"present_value_{i}", whole[f"present_value_{i}"], cache.v[i], bounds))
    first = run_session(session, {cached.key: windows[:, :P], **cached.empty_past(len(windows))})
    past = {p: torch.from_numpy(first[q]) for p, q in zip(past_names(cached.n_layer), present_names(cached.n_layer))}
    after = run_session(session, {cached.key: windows[:, P:], **past})
    checks.append(compare(f"{cached.output_name} after a past of {P}", after[cached.output_name], want[:, P:], bounds))
    return Verified(checks, len(windows), seconds=time.perf_counter() - start)


def kv_graph(predictor, rows: int) -> Graph:
    """export/onnx.py's write_onnx frame for a GPT run: CachedGPT traced on a past and a new block, checked by verify_kv."""
    network = predictor.model
    cached = CachedGPT(network).eval()
    windows = val_windows(predictor.bundle.path, predictor.features, rows)

    def check(session) -> Verified:
        verified = verify_kv(session, network, windows)
        verified.split = "val"
        return verified

    return Graph(cached, export_sample(cached, windows), kv_axes(cached), cached.output_names, check)


def kv_graph_problem(session, n_layer: int, output_name: str) -> str | None:
    """Why an ONNX file is not this GPT's KV-cache graph (an older export, another model), or None."""
    inputs = [i.name for i in session.get_inputs()]
    outputs = [o.name for o in session.get_outputs()]
    missing_in = [n for n in ["text", *past_names(n_layer)] if n not in inputs]
    missing_out = [n for n in [output_name, *present_names(n_layer)] if n not in outputs]
    if missing_out or missing_in:
        return f"it is not a KV-cache graph of this {n_layer}-layer GPT (missing {', '.join((missing_in + missing_out)[:3])})"
    return None


# ------------------------------------------------------------------------------------------------ ONNX Runtime
class OnnxDecoder:
    """The GPT's KV-cache graph in ONNX Runtime as models/generation.py's Decoder: the cache is the last call's
    present_* arrays, fed back as the next call's past_*."""

    def __init__(self, session, path: Path, key: str, output_name: str, n_layer: int, n_head: int, head_size: int,
                 block_size: int):
        self.session, self.key, self.output_name, self.block_size = session, key, output_name, block_size
        self.n_layer, self.n_head, self.head_size = n_layer, n_head, head_size
        self._past, self._present = past_names(n_layer), present_names(n_layer)
        problem = kv_graph_problem(session, n_layer, output_name)
        if problem:
            raise BundleError(f"{path}: {problem}, perhaps from an older export; "
                              f"write it again with: forgeml export {path.parent} --format onnx")

    @classmethod
    def for_network(cls, session, path: Path, network: nn.Module) -> OnnxDecoder:
        gpt, key, _ = next_token_parts(network)
        cfg = gpt.cfg
        return cls(session, Path(path), key, network.output_names[0], cfg.n_layer, cfg.n_head, cfg.n_embd // cfg.n_head,
                   cfg.block_size)

    def new_cache(self) -> dict[str, np.ndarray]:
        return {n: np.zeros((1, self.n_head, 0, self.head_size), dtype=np.float32) for n in self._past}  # (1, nh, 0, hs)

    def run(self, ids: np.ndarray, past: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Logits (B, T, V) for token ids (B, T) after `past`, and the cache that now includes them."""
        values = self.session.run([self.output_name, *self._present], {self.key: ids, **past})
        return values[0], dict(zip(self._past, values[1:]))

    def logits(self, ids: list[int], cache: dict[str, np.ndarray] | None) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """models/generation.py's Decoder: logits (1, vocab) at the last of `ids`, fed after `cache` (None: none)."""
        logits, cache = self.run(np.asarray([ids], dtype=np.int64), cache if cache is not None else self.new_cache())
        return torch.from_numpy(logits[:, -1, :]), cache  # (1, V)

    def outputs(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The whole-window call (no past): the Network's output dict for a batch of token ids."""
        ids = x[self.key].cpu().numpy()
        past = {n: np.zeros((len(ids), self.n_head, 0, self.head_size), dtype=np.float32) for n in self._past}
        logits, _ = self.run(ids, past)
        return {self.output_name: torch.from_numpy(logits).float()}
