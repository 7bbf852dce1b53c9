"""A trained model with its preprocessing, rebuilt from a bundle: raw inputs in, predictions out. One type
for every bundle; a model with a next-token output (a GPT) also generates text.

    model = forgeml.load("runs/digits-cnn")
    model.predict([{"image": array_8x8}])   # [{'label': '3', 'confidence': 0.99, 'probabilities': {...}}]

    lm = forgeml.load("runs/shakespeare-gpt")
    lm.generate("ROMEO:", max_new_tokens=200, temperature=0.8, top_k=40, seed=1)
    lm.predict(["ROMEO:"])                  # [{'token': '\n', 'probability': 0.41, 'top': {...}}]
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from forgeml.bundle import Bundle
from forgeml.config import Config
from forgeml.data.columns import Columns
from forgeml.data.featureset import FeatureSet
from forgeml.data.tensor_dict import n_rows, to_device
from forgeml.data.tensor_dict import rows as take_rows
from forgeml.errors import BundleError, DataError, RequestError
from forgeml.trust import require_trust

BACKENDS = ("torch", "onnx")


class Predictor:
    def __init__(self, path: str | Path, device: str = "cpu", trust_code: bool = False, backend: str | None = None):
        if backend not in (None, *BACKENDS):
            raise RequestError(f"backend {backend!r}: choose one of {', '.join(BACKENDS)}")
        self.bundle = Bundle.open(path)
        onnx_only = self.bundle.onnx_only
        if onnx_only and backend == "torch":
            raise RequestError(f"{self.bundle.path} holds only an ONNX model ({self.bundle.meta().get('variant', {}).get('kind', 'onnx')}), "
                               "no PyTorch weights: load it with backend='onnx' (CLI: --backend onnx, or leave --backend out)")
        backend = backend or ("onnx" if onnx_only else "torch")
        try:
            self.config = Config.model_validate(self.bundle.read_config_dict())
        except Exception as exc:
            raise BundleError(f"{self.bundle.file('config.yaml')}: not a valid config for this forgeml ({exc})") from None
        require_trust(self.config, self.bundle.file("config.yaml"), trust_code)  # before anything it names is imported
        try:
            self.features = FeatureSet.from_json(self.bundle.read_json("features.json"))
        except DataError as exc:  # an older layout: say which file, and the command that converts it
            raise BundleError(f"{self.bundle.file('features.json')}: {exc}") from None
        self.device = torch.device(device)
        from forgeml.models.compose import network_for

        self.model = network_for(self.config, self.features)
        try:
            if not onnx_only:  # an ONNX-only bundle's network is built for its heads' losses and output names alone
                self.model.load_state_dict(self.bundle.load_weights())
        except RuntimeError as exc:
            raise BundleError(f"{self.bundle.file('model.safetensors')}: weights do not fit the model in config.yaml ({exc})") from None
        self.model.to(self.device).eval()
        self.backend, self.session = backend, None
        self._decoder = None  # a GPT's KV-cache graph in ONNX Runtime (export/gpt_onnx.py), with the onnx backend
        if backend == "onnx":  # outputs come from ONNX Runtime; the network stays for its heads' losses (evaluate)
            self.session = self._onnx_session()

    def _onnx_session(self):
        from forgeml.export.onnx import ONNX_FILE, is_language_model, open_session

        session = open_session(self.bundle.file(ONNX_FILE))
        if is_language_model(self.features):  # its inputs and outputs carry the KV cache: checked there
            from forgeml.export.gpt_onnx import OnnxDecoder

            self._decoder = OnnxDecoder.for_network(session, self.bundle.file(ONNX_FILE), self.model)
            return session
        names = [i.name for i in session.get_inputs()]
        outputs = [o.name for o in session.get_outputs()]
        if outputs != list(self.model.output_names):
            raise BundleError(f"{self.bundle.file(ONNX_FILE)}: its outputs ({', '.join(outputs)}) are not this run's "
                              f"({', '.join(self.model.output_names)}); export it again: forgeml export {self.bundle.path} --format onnx")
        self._onnx_inputs = names
        return session

    @property
    def path(self) -> Path:
        return self.bundle.path

    @property
    def task(self) -> str:
        return self.features.task

    @property
    def tokenizer(self):
        """The tokenizer of a language model's corpus input (None for other models)."""
        return getattr(self._corpus(required=False), "tokenizer", None)

    @property
    def classes(self) -> list[str] | None:
        return getattr(self.features.target, "classes", None)

    # ------------------------------------------------------------------ tensors
    @torch.no_grad()
    def iter_outputs(self, x: dict[str, torch.Tensor], batch_size: int | None = None):
        """(row slice, output dict) per batch: logits, or standardised regression values, per output."""
        batch_size = batch_size or self.config.eval.batch_size
        for i in range(0, n_rows(x), batch_size):
            rows = slice(i, i + batch_size)
            if self.session is not None:
                yield rows, self._onnx_outputs(take_rows(x, i, i + batch_size))
                continue
            out = self.model(to_device(take_rows(x, i, i + batch_size), self.device))
            yield rows, {k: v.float().cpu() for k, v in out.items()}

    def _onnx_outputs(self, x: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        if self._decoder is not None:
            return self._decoder.outputs(x)  # whole windows, an empty past
        missing = [n for n in self._onnx_inputs if n not in x]
        if missing:
            raise BundleError(f"{self.bundle.file('model.onnx')}: it wants input(s) {', '.join(missing)} that this run's "
                              f"features.json does not make; export it again: forgeml export {self.bundle.path} --format onnx")
        values = self.session.run(None, {n: x[n].cpu().numpy() for n in self._onnx_inputs})
        return {name: torch.from_numpy(v).float() for name, v in zip(self.model.output_names, values)}

    def outputs(self, x: dict[str, torch.Tensor], batch_size: int | None = None) -> dict[str, torch.Tensor]:
        """Raw network outputs for transformed inputs, all rows at once: a tensor per output."""
        parts = [out for _, out in self.iter_outputs(x, batch_size)]
        if not parts:
            return {o.name: torch.empty(0, o.n_outputs) for o in self.features.outputs}
        return {name: torch.cat([p[name] for p in parts]) for name in parts[0]}

    def decode(self, out: dict[str, torch.Tensor]) -> list[dict[str, Any]]:
        """One dict per row: a single output's fields, or a key per output (FeatureSet.decode)."""
        return self.features.decode(out)

    # ------------------------------------------------------------------ raw inputs
    def to_columns(self, inputs: Any) -> Columns:
        if isinstance(inputs, Columns):
            return inputs
        try:
            import pandas as pd

            if isinstance(inputs, pd.DataFrame):
                inputs = inputs.to_dict(orient="records")
        except ImportError:  # pragma: no cover
            pass
        if isinstance(inputs, (dict, str)):
            inputs = [inputs]
        if self.features.inputs[0].kind in ("text", "corpus") and isinstance(inputs, (list, tuple)):
            inputs = [{self.features.inputs[0].name: v} if isinstance(v, str) else v for v in inputs]  # raw strings
        if len(self.features.inputs) == 1 and self.features.inputs[0].kind == "audio" and isinstance(inputs, (list, tuple, bytes, Path)):
            inputs = [inputs] if isinstance(inputs, (bytes, Path)) else inputs  # raw clips: paths, file bytes, 1-D waves
            inputs = [{self.features.inputs[0].name: v} if isinstance(v, (str, Path, bytes, np.ndarray)) else v for v in inputs]
        if isinstance(inputs, np.ndarray) and self.features.inputs[0].kind == "image":
            inputs = [{self.features.inputs[0].name: im} for im in inputs]
        if not isinstance(inputs, (list, tuple)):
            raise RequestError(f"predict takes a list of rows (dicts with keys {', '.join(self.features.schema())}); "
                               f"got {type(inputs).__name__}")
        if not inputs:
            raise RequestError("predict got no rows")
        return self.features.rows_to_columns(list(inputs))

    def predict(self, inputs: Any) -> list[dict[str, Any]]:
        """Predictions for raw rows: a list of dicts, a DataFrame, or (image models) an array of images.

        Rows go through the same fitted preprocessing as in training (features.json)."""
        cols = self.to_columns(inputs)
        self.features.warn_unseen(cols)
        if self._corpus(required=False) is not None:  # prompts differ in length: one at a time (the last position counts)
            return [row for i in range(len(cols)) for row in self.decode(self.outputs(self.features.transform_inputs(cols.take([i]))))]
        return self.decode(self.outputs(self.features.transform_inputs(cols)))

    def explain(self, inputs: Any, method: str = "integrated_gradients", output: str | None = None, target: str | None = None,
                batch_size: int = 32) -> list[dict[str, Any]]:
        """Attribute each row's prediction to its inputs with Captum (needs `pip install 'forgeml[explain]'`).

        Args:
            inputs: raw rows, as `predict` takes them.
            method: "integrated_gradients" (default), "shap" (GradientShap) or "occlusion" (FeatureAblation).
            output: explain only this output (default: every output of the run).
            target: the class (or label) to explain (default: the predicted one).
            batch_size: rows attributed together (default 32).

        Returns one dict per row: output, target, method, score, baseline (integrated gradients: delta) and
        attributions: a number per table column, [(token, value), ...] per text, an (H, W) array per image, a value
        per step per series. With several outputs, a dict per output name. See docs/explain.md.

            model.explain([{"age": 39, "workclass": "Private", ...}])[0]["attributions"]["age"]
        """
        from forgeml.explain.explainer import explain

        return explain(self, inputs, method, output, target, batch_size)

    # ------------------------------------------------------------------ text, where there is a next-token output
    def _corpus(self, required: bool = True):
        corpus = next((f for f in self.features.inputs if f.kind == "corpus"), None)
        if corpus is None and required:
            raise RequestError(f"{self.path} has no next-token output, so it does not generate text; use predict(rows) "
                               f"(CLI: forgeml predict {self.path} INPUT...)")
        return corpus

    def stream(self, prompt: str, max_new_tokens: int = 200, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, stop: list[str] | None = None, seed: int | None = None,
               use_cache: bool = True) -> Iterator[str]:
        """Yield the generated continuation of `prompt` piece by piece as it is produced (the prompt is not repeated).

        temperature 0 is greedy; top_k/top_p limit the sampled tokens; `stop` ends the text at a string; `seed`
        makes it repeatable. Past the context length the window slides, so any length works."""
        from forgeml.text_generation import stream_text

        return stream_text(self._decoder or self.model, self._corpus(), prompt, max_new_tokens, temperature, top_k, top_p, stop, seed,
                           use_cache, self.device)

    def generate(self, prompt: str, max_new_tokens: int = 200, **kwargs: Any) -> str:
        """The generated continuation of `prompt` as one string (see `stream` for the options)."""
        return "".join(self.stream(prompt, max_new_tokens, **kwargs))

    def evaluate_tokens(self, tokens, batch_size: int | None = None) -> dict[str, float]:
        """Loss and perplexity over a whole token stream, in non-overlapping windows."""
        from forgeml.evaluation.perplexity import evaluate_tokens

        self._corpus()
        forward = self._decoder.outputs if self._decoder is not None else self.model
        return evaluate_tokens(forward, self.features, tokens, batch_size or max(1, self.config.eval.batch_size // 8), self.device)

    def evaluate_text(self, text: str) -> dict[str, float]:
        """Loss and perplexity of the model on a text."""
        return self.evaluate_tokens(np.asarray(self._corpus().tokenizer.encode(text), dtype=np.int64))

    def __repr__(self) -> str:
        return f"Predictor({str(self.path)!r}, task={self.task}, inputs={self.features.schema()})"


def load(path: str | Path, device: str = "cpu", trust_code: bool = False, backend: str | None = None) -> Predictor:
    """Rebuild a model and its preprocessing from a run folder (trust_code: allow a custom model's code;
    backend "onnx": outputs from RUN/model.onnx through ONNX Runtime; None: torch, or onnx for a bundle
    that holds only model.onnx)."""
    return Predictor(path, device, trust_code, backend)
