"""Run configuration: frozen dataclasses with defaults in code, overridden by YAML, then by CLI.

Precedence: dataclass defaults < `configs/default.yaml` < `--config FILE` < `--set section.key=value`.
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
import math
import typing
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from edgekit.errors import ConfigError
from edgekit.quantize.overflow import OVERFLOW_FIXES
from edgekit.rundir import layout

NAN_STRATEGIES = ("zero", "mean", "median", "interpolate", "drop", "raise")
SPLIT_MODES = ("group", "official", "time")
LENGTH_POLICIES = ("error", "tile", "pad", "truncate", "resample")
NORMALIZATIONS = ("auto", "global", "window")
ROW_LAYOUTS = ("halves", "interleaved")
SAMPLERS = ("shuffle", "balanced")
SHIFT_MODES = ("hold", "wrap")
CHECKPOINT_RULES = ("best", "last", "train_loss")
SELECTION_METRICS = ("auto", "accuracy", "macro_f1")
MODEL_SIZES = ("auto", "tiny", "small", "medium", "large")
# each one's Dataflow Compiler and HailoRT: targets.hailo.HW_ARCHS
HAILO_ARCHS = ("hailo8", "hailo8l", "hailo10h")


@dataclass(frozen=True)
class DataConfig:
    """Where windows come from and how they are cleaned, cut, split and checked (`data:`)."""

    source: str = "bundled:basicmotions"
    window_length: int = 128  # samples per window when a source is a continuous stream
    window_stride: int = 64
    nan_strategy: str = "interpolate"  # zero | mean | median | interpolate | drop | raise
    max_nan_fraction: float = 0.05  # refuse the data set above this share of non-finite values
    # train/val/test shares (official mode: only train:val, the source fixes test). Val 0 (the
    # default, LITE's recipe) trains on every window a val cut would take: +18 of 597 windows on
    # the nested holdout (bench/README.md); nothing then selects or reports on validation, and a
    # sweep searches with a val cut of its own (edgekit.sweep.run)
    split_fractions: tuple[float, float, float] = (0.85, 0.0, 0.15)
    # group: by whole group | official: the source's own test split (+ a val cut if val > 0) |
    # time: chronological cuts inside each group, with a gap so no sample is in two splits
    split_mode: str = "group"
    # official mode: 0 = the val cut of split_fractions | K >= 2 = stratified K-fold cross-validation
    # of the source's train split, fold `cv_fold` (0..K-1) as val (bench accuracy --folds)
    cv_folds: int = 0
    cv_fold: int = 0
    # unequal-length series (UEA .ts): error | tile (repeat the series) | pad (hold the last value)
    # | truncate | resample; target_length 0 = the policy's rule (tile, pad: longest, truncate:
    # shortest, resample: median)
    length_policy: str = "tile"
    target_length: int = 0
    # global: each channel by the train split's mean/std | window: each window's channels by their
    # own mean/std (amplitudes spanning orders of magnitude) | auto: window when most train windows
    # would span only a few int8 input steps under the global statistics (edgekit.data.prepare)
    normalize: str = "auto"
    # what fills the two rows of (C, 2, T/2): interleaved (even samples, odd samples: the (2, 1)
    # convolution mixes neighbouring samples; chosen on validation, bench/README.md) | halves
    # (first half, second half: the (2, 1) convolution mixes samples T/2 apart)
    row_layout: str = "interleaved"
    channels: tuple[str, ...] = ()  # names, globs (hand_*) or the source's groups; () = all
    seed: int = 0
    csv_group_column: str = "group"
    csv_label_column: str = "label"
    csv_time_column: str = "time"


# a boolean the data may decide: auto | true | false (YAML's true and false are read as their names)
Switch = Literal["auto", "true", "false"]


@dataclass(frozen=True)
class ModelConfig:
    """Every field left at its "from the data" value follows the documented size rule (edgekit.train.sizing)."""

    # auto | tiny | small | medium | large (widths; auto = from the train windows per class and in all)
    size: str = "auto"
    # conv widths: stem, first stride-2 stage, row mix; () = from size
    channels: tuple[int, ...] = ()
    # the stages' (1, k) kernels along time; 0 = auto: 5, or 3 where only 3 lets every stride-2
    # stage max-pool within the MAC budget (long windows such as PLAID's; edgekit.train.sizing)
    kernel_size: int = 0
    # the stem's (1, k) kernel, the one convolution at the full input rate; 0 = kernel_size; -1 = 9
    # taps where a row holds 18 samples and the budget allows (edgekit.train.sizing)
    stem_kernel: int = -1
    downsample: int = 0  # stride-2 stages; 0 = from the window length (encoder ends near 8 steps)
    # leading stages run at full rate with dilated kernels instead of stride 2 (same receptive
    # field, more MACs; edgekit.models.network); -1 = as many as fit the MAC budget
    dilated_stages: int = 0
    # the next stride-2 stages convolve at stride 1 and max-pool by 2 instead (shift-robust
    # features, 2x those stages' MACs; edgekit.models.network); -1 = as many as fit the MAC budget
    # (+17 of 1335 windows on the few-shot holdout, +2 of 597 on full splits: bench/README.md)
    pooled_stages: int = -1
    fsq_levels: tuple[int, ...] = ()  # () = from the number of classes
    dropout: float = 0.1  # on the pooled features, training only
    quant_preset: str = "int8"  # int8 (float scales) | po2 (power-of-two scales for MCUs)
    # 7-bit weights so x86 AVX2 int8 kernels cannot saturate (edgekit.quantize.overflow):
    # all (safe on every CPU) | first_layer | none (only for VNNI, Arm or MCU targets)
    overflow_fix: str = "all"
    # percentile of |input| over the first QAT steps that sets the int8 input range (then learned):
    # a lower one clips rare spikes to keep resolution for the rest (99.9: ACSF1 +4 of 60, 8 sets
    # +1 of 597 on the nested holdout, so not the default; bench/README.md)
    input_percentile: float = 99.999
    # peak-to-peak of the fixed dither added before the int8 input quantizer, in steps of the
    # starting input grid (that percentile / 127); 0 = none. A flat stretch keeps its level below
    # one step (edgekit.models.network.dither_pattern; ACSF1 40 -> 47 of 60, 8 sets 535 -> 541 of
    # 597 on the nested holdout, bench/README.md)
    input_dither: float = 2.0
    # true: the stem's first channels (at most half) start as LITE's increase, decrease and peak
    # detectors, held fixed through the float phase and free in QAT (edgekit.models.handcrafted);
    # auto: true below 11 train windows per class on average, where with the slower QAT rate they
    # gained 3455 -> 3463 of 4635 few-shot holdout windows over 5 seeds at 5 a class and lifted
    # OSULeaf to the plain CNN; else false (546 -> 537 of 597 on the nested holdout; bench/README.md)
    handcrafted_filters: Switch = "auto"


@dataclass(frozen=True)
class AugmentConfig:
    """Host-side transforms of training batches only (never val, test, calibration or export); 0 = off."""

    jitter: float = 0.03  # additive Gaussian noise, std in normalised units
    scale: float = 0.1  # per-window, per-channel gain ~ N(1, scale)
    shift: float = 0.2  # time shift of up to this fraction of the window
    # what fills the samples a shift uncovers: hold (the edge value) | wrap (the other end of the
    # window, a circular shift); wrap at 0.2 chosen on validation (bench/README.md)
    shift_mode: str = "wrap"
    # shifts move by whole multiples of this many samples; 0 = auto: the period of a cycle every
    # train window repeats at the same phase (a stream interleaving quantities sample by sample,
    # edgekit.train.augment.shared_cycle), else 1
    shift_step: int = 0
    magnitude_warp: float = 0.0  # smooth random gain curve (4 knots) ~ N(1, magnitude_warp)
    time_warp: float = 0.0  # smooth random speed change, up to this fraction
    mixup: float = 0.0  # Beta(alpha, alpha) mixing of window pairs and their labels
    # time masking (cutout): one random span of up to this fraction of the window set to 0, the
    # normalised mean, so the model cannot lean on any one stretch of the signal
    mask: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe of both phases, float twin then QAT (`train:`)."""

    float_epochs: int = 60  # float twin with BatchNorm, folded before QAT
    qat_epochs: int = 30
    batch_size: int = 16
    # the QAT phase's batch, 0 = batch_size. Its epoch covers the same windows as a float epoch
    # (`min_epoch_steps` counts batch_size batches), so a larger batch takes fewer, larger steps;
    # a QAT step is mostly per-call overhead, not arithmetic, so the phase costs nearly
    # proportionally less. Off by default: the fewer QAT steps cost nested-holdout windows
    # (bench/README.md)
    qat_batch_size: int = 0
    lr: float = 3e-3
    # the QAT phase's peak rate; 0 = auto: 0.001, a third of it below 11 train windows per class on
    # average (edgekit.train.sizing.qat_lr_for; the run's value is `qat_lr` in metrics.json)
    qat_lr: float = 0.0
    weight_decay: float = 1e-4
    optimizer: str = "adamw"  # adam | adamw
    scheduler: str = "cosine"  # cosine (with warmup) | plateau
    warmup_epochs: int = 3
    grad_clip: float = 1.0
    grad_accum: int = 1
    label_smoothing: float = 0.0
    class_weights: bool = False  # weight the loss by inverse class frequency
    # shuffle | balanced (every class drawn equally often, with replacement)
    sampler: str = "shuffle"
    # the validation score train.checkpoint=best selects on: auto = macro_f1 when the largest train class has more
    # than IMBALANCE_RATIO x the windows of the smallest, else accuracy
    select_on: str = "auto"
    # which epoch each phase keeps: last (the schedule's final epoch) | best (by that validation
    # score, with early stopping) | train_loss (the lowest mean train loss, LITE's rule); with last
    # and train_loss validation is only reported, so a tiny val cut cannot pick (last: chosen on a
    # nested holdout, bench/README.md)
    checkpoint: str = "last"
    # an epoch (one validation, one checkpoint) is at least this many optimizer steps: a 40-window
    # set passes over its data several times per epoch instead of stopping after a few dozen steps
    min_epoch_steps: int = 32
    # knowledge distillation (edgekit.train.loop): this share of the loss matches the soft outputs
    # of `teachers` float models, the float twin and teachers - 1 more of other seeds trained first
    # (the QAT phase learns from all of them, the float twin from the others); 0 = off
    distill_weight: float = 0.0
    teachers: int = 1
    # validate and keep an exponential moving average of the weights (and BatchNorm statistics)
    # with this time constant in epochs instead of the trained weights (Polyak averaging); 0 = off
    ema_epochs: float = 0.0
    patience: int = 20  # early stopping: epochs without a better validation score; 0 = off
    seed: int = 0
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # torch CPU threads; 0 = torch default


@dataclass(frozen=True)
class CalibrateConfig:
    """The representative set's size and the calibration passes (`calibrate:`)."""

    num_windows: int = 1024  # representative set size (all train windows if fewer)
    batch_size: int = 64
    bias_correction: bool = True


@dataclass(frozen=True)
class ExportConfig:
    """Defaults for the target options (each target takes the ones it accepts)."""

    opset: int = 13  # Hailo DFC 3.x wants 13; legacy exporter
    hw_arch: str = "hailo8"  # one of HAILO_ARCHS
    # also emit a variant whose input is already int8 (MCU firmware feeds int8)
    int8_input: bool = True
    reference_samples: int = 64


@dataclass(frozen=True)
class VerifyConfig:
    """Link settings and gates of `edgekit verify` saved with the run (`verify:`)."""

    baud: int = 921600
    timeout: float = 2.0  # seconds per reply before a retry
    retries: int = 3
    limit: int = 0  # 0 = all test windows
    max_resets: int = 3
    min_agreement: float = 0.99  # top-1 agreement device vs CPU reference
    max_lsb: int = 1  # max |Δ| in output LSB device vs CPU reference


@dataclass(frozen=True)
class RunConfig:
    """Every section of a run's config; its YAML and hash go into the run directory."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    calibrate: CalibrateConfig = field(default_factory=CalibrateConfig)
    export: ExportConfig = field(default_factory=ExportConfig)
    verify: VerifyConfig = field(default_factory=VerifyConfig)

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(dataclasses.asdict(self)))

    def digest(self) -> str:
        return hashlib.sha256(json.dumps(self.to_dict(), sort_keys=True).encode()).hexdigest()[:16]

    def to_yaml(self) -> str:
        return f"# config hash {self.digest()}\n" + yaml.safe_dump(self.to_dict(), sort_keys=False)


def _coerce(value: Any, annotation: Any, key: str, example: str) -> Any:
    """Check `value` against a field annotation; one-line error naming the key and showing
    `example` (the key's own default, or the form of an empty list's) otherwise."""
    origin = typing.get_origin(annotation)
    if origin is tuple:
        inner = typing.get_args(annotation)[0]
        if inner is str and isinstance(value, str):  # --set data.channels=hand_*,heart_rate
            value = [item.strip() for item in value.split(",") if item.strip()]
        items = _items(value, inner)
        if items is None:
            raise ConfigError(
                f"{key}: expected a list of {ITEM_KINDS[inner]} such as {example}, got {value!r}"
            )
        fixed = typing.get_args(annotation)
        if fixed[-1] is not Ellipsis and len(items) != len(fixed):
            raise ConfigError(
                f"{key}: expected {len(fixed)} values, got {len(items)}; e.g. {example}"
            )
        return items
    if origin is Literal:
        choices = typing.get_args(annotation)
        name = str(value).lower() if isinstance(value, bool) else value
        if name in choices:
            return name
        raise ConfigError(f"{key}: {value!r} is not one of {', '.join(choices)}")
    if annotation is bool:
        if isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected true or false, got {value!r}")
    if annotation is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{key}: expected an integer such as {example}, got {value!r}")
    if annotation is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):  # YAML 1.1 reads 1e-3 (no dot) as a string
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{key}: expected a number such as {example}, got {value!r}")
    if annotation is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{key}: expected a string such as {example}, got {value!r}")
    raise ConfigError(f"{key}: unsupported field type {annotation!r}")


def _items(value: Any, inner: type) -> tuple[Any, ...] | None:
    """A list's items, each of type `inner`; None when `value` is not such a list."""
    if not isinstance(value, list | tuple):
        return None
    try:
        return tuple(_coerce(item, inner, "", "") for item in value)
    except ConfigError:
        return None


ITEM_KINDS = {int: "integers", float: "numbers", str: "strings"}
# what an error shows for the list keys whose default is empty
EMPTY_LIST_EXAMPLES = {
    "data.channels": "[hand_*, heart_rate]",
    "model.channels": "[16, 32, 32]",
    "model.fsq_levels": "[8, 6, 5]",
}


def _example(key: str, current: Any) -> str:
    """A value of the right kind for `key`: its current value, as one would type it."""
    if isinstance(current, tuple):
        return f"[{', '.join(map(str, current))}]" if current else EMPTY_LIST_EXAMPLES[key]
    return str(current)  # (true/false keys name their two values instead)


def _suggest(name: str, choices: list[str]) -> str:
    close = difflib.get_close_matches(name, choices, n=1)
    return f"; did you mean '{close[0]}'?" if close else f"; valid keys: {', '.join(choices)}"


# keys a later version replaced -> their replacement; a run written before still loads
RETIRED_KEYS = {"export.calib_windows": "calibrate.num_windows"}
# keys added since runs were first written, with the behaviour a run written before them had
ADDED_KEYS = {
    "data.normalize": "global",
    "data.row_layout": "halves",
    "data.cv_folds": 0,
    "data.cv_fold": 0,
    "model.dilated_stages": 0,
    "model.pooled_stages": 0,
    "model.input_percentile": 99.999,
    "model.input_dither": 0.0,
    "model.stem_kernel": 0,
    "model.handcrafted_filters": False,
    "augment.shift_mode": "hold",
    "augment.mask": 0.0,
    "augment.shift_step": 1,
    "train.checkpoint": "best",
    "train.distill_weight": 0.0,
    "train.teachers": 1,
    "train.ema_epochs": 0.0,
    "train.qat_batch_size": 0,
}


def _drop_retired(values: dict[str, Any]) -> dict[str, Any]:
    """A run's resolved config without the keys that were retired since it was written."""
    result = {
        section: dict(keys) if isinstance(keys, dict) else keys for section, keys in values.items()
    }
    for key in RETIRED_KEYS:
        section, name = key.split(".")
        if isinstance(result.get(section), dict):
            result[section].pop(name, None)
    return result


def _merge(instance: Any, overrides: dict[str, Any], prefix: str = "") -> Any:
    if not isinstance(overrides, dict):
        raise ConfigError(
            f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {overrides!r}"
        )
    hints = typing.get_type_hints(type(instance))
    names = [f.name for f in dataclasses.fields(instance)]
    changes = {}
    for key, value in overrides.items():
        if f"{prefix}{key}" in RETIRED_KEYS:
            replacement = RETIRED_KEYS[f"{prefix}{key}"]
            raise ConfigError(
                f"config key '{prefix}{key}' was replaced by '{replacement}'; use {replacement}"
            )
        if key not in names:
            raise ConfigError(f"unknown config key '{prefix}{key}'{_suggest(str(key), names)}")
        current = getattr(instance, key)
        if dataclasses.is_dataclass(current):
            changes[key] = _merge(current, value, f"{prefix}{key}.")
        else:
            changes[key] = _coerce(
                value, hints[key], f"{prefix}{key}", _example(f"{prefix}{key}", current)
            )
    return dataclasses.replace(instance, **changes)


def _check_choice(key: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{key}: '{value}' is not one of {', '.join(choices)}")


@dataclass(frozen=True)
class Range:
    """Allowed values of one numeric key; NaN and infinities are never allowed."""

    low: float | None = None
    high: float | None = None
    low_open: bool = False  # low itself excluded
    high_open: bool = False

    def holds(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.low is not None and (value < self.low or (self.low_open and value == self.low)):
            return False
        return self.high is None or not (
            value > self.high or (self.high_open and value == self.high)
        )

    def __str__(self) -> str:
        if self.high is None:
            return f"{'>' if self.low_open else '>='} {self.low:g}"
        assert self.low is not None
        return f"in {'(' if self.low_open else '['}{self.low:g}, {self.high:g}{')' if self.high_open else ']'}"


AT_LEAST_0, AT_LEAST_1, POSITIVE, FRACTION = (
    Range(0),
    Range(1),
    Range(0, low_open=True),
    Range(0, 1),
)
BELOW_1 = Range(0, 1, high_open=True)
RANGES: dict[str, Range] = {
    "data.window_length": Range(2),
    "data.window_stride": AT_LEAST_1,
    "data.max_nan_fraction": FRACTION,
    "data.target_length": AT_LEAST_0,
    "data.cv_folds": AT_LEAST_0,
    "data.cv_fold": AT_LEAST_0,
    "data.seed": AT_LEAST_0,
    "model.kernel_size": AT_LEAST_0,
    "model.stem_kernel": Range(-1),
    "model.downsample": AT_LEAST_0,
    "model.dilated_stages": Range(-1),
    "model.pooled_stages": Range(-1),
    "model.dropout": BELOW_1,
    "model.input_percentile": Range(50, 100),
    "model.input_dither": AT_LEAST_0,
    "augment.jitter": AT_LEAST_0,
    "augment.scale": AT_LEAST_0,
    "augment.shift": BELOW_1,
    "augment.shift_step": AT_LEAST_0,
    "augment.magnitude_warp": AT_LEAST_0,
    "augment.time_warp": BELOW_1,
    "augment.mixup": AT_LEAST_0,
    "augment.mask": BELOW_1,
    "train.float_epochs": AT_LEAST_1,
    "train.qat_epochs": AT_LEAST_1,
    "train.batch_size": AT_LEAST_1,
    "train.qat_batch_size": AT_LEAST_0,
    "train.lr": POSITIVE,
    "train.qat_lr": AT_LEAST_0,
    "train.weight_decay": AT_LEAST_0,
    "train.warmup_epochs": AT_LEAST_0,
    "train.grad_clip": AT_LEAST_0,
    "train.grad_accum": AT_LEAST_1,
    "train.label_smoothing": BELOW_1,
    "train.min_epoch_steps": AT_LEAST_0,
    "train.distill_weight": FRACTION,
    "train.teachers": AT_LEAST_1,
    "train.ema_epochs": AT_LEAST_0,
    "train.patience": AT_LEAST_0,
    "train.seed": AT_LEAST_0,
    "train.threads": AT_LEAST_0,
    "calibrate.num_windows": AT_LEAST_1,
    "calibrate.batch_size": AT_LEAST_1,
    "export.opset": Range(13, 21),
    "export.reference_samples": AT_LEAST_1,
    "verify.baud": AT_LEAST_1,
    "verify.timeout": POSITIVE,
    "verify.retries": AT_LEAST_0,
    "verify.limit": AT_LEAST_0,
    "verify.max_resets": AT_LEAST_0,
    "verify.min_agreement": FRACTION,
    "verify.max_lsb": AT_LEAST_0,
}
MAX_CODE_STEPS = 127  # lcm of level // 2 over the FSQ dims: every code must be exact in int8
MAX_CODEBOOK = 2**32  # the product of the FSQ levels: the device's code index is a uint32


def _check_ranges(config: RunConfig) -> None:
    defaults = RunConfig()
    for key, allowed in RANGES.items():
        section, name = key.split(".")
        value = getattr(getattr(config, section), name)
        if not allowed.holds(value):
            example = getattr(getattr(defaults, section), name)
            raise ConfigError(f"{key}: must be {allowed}, got {value!r}; e.g. {key}={example}")


def _validate(config: RunConfig) -> None:
    _check_choice("data.nan_strategy", config.data.nan_strategy, NAN_STRATEGIES)
    _check_choice("data.split_mode", config.data.split_mode, SPLIT_MODES)
    _check_choice("data.length_policy", config.data.length_policy, LENGTH_POLICIES)
    _check_choice("data.normalize", config.data.normalize, NORMALIZATIONS)
    _check_choice("data.row_layout", config.data.row_layout, ROW_LAYOUTS)
    _check_choice("train.sampler", config.train.sampler, SAMPLERS)
    _check_choice("augment.shift_mode", config.augment.shift_mode, SHIFT_MODES)
    _check_choice("train.select_on", config.train.select_on, SELECTION_METRICS)
    _check_choice("train.checkpoint", config.train.checkpoint, CHECKPOINT_RULES)
    _check_choice("model.size", config.model.size, MODEL_SIZES)
    _check_choice("model.quant_preset", config.model.quant_preset, ("int8", "po2"))
    _check_choice("model.overflow_fix", config.model.overflow_fix, OVERFLOW_FIXES)
    _check_choice("train.optimizer", config.train.optimizer, ("adam", "adamw"))
    _check_choice("train.scheduler", config.train.scheduler, ("cosine", "plateau"))
    _check_choice("train.device", config.train.device, ("auto", "cpu", "cuda"))
    _check_choice("export.hw_arch", config.export.hw_arch, HAILO_ARCHS)
    _check_ranges(config)
    fractions = config.data.split_fractions
    if (  # three of them: the field's type says so
        not all(Range(0, low_open=True).holds(f) for f in (fractions[0], fractions[2]))
        or not Range(0).holds(fractions[1])
        or abs(sum(fractions) - 1) > 1e-6
    ):
        raise ConfigError(
            "data.split_fractions: must be 3 numbers summing to 1, train and test positive, val "
            f"positive or 0, got {list(fractions)}; e.g. [0.7, 0.15, 0.15]"
        )
    _check_folds(config.data)
    _check_no_val(config)
    if config.train.teachers > 1 and config.train.distill_weight == 0:
        raise ConfigError(
            f"train.teachers={config.train.teachers} trains teachers only to distill from them, but "
            "train.distill_weight=0; set train.distill_weight (e.g. 0.5) or train.teachers=1"
        )
    levels = config.model.fsq_levels
    if any(level < 2 for level in levels) or (
        levels and math.lcm(*(lv // 2 for lv in levels)) > MAX_CODE_STEPS
    ):
        raise ConfigError(
            f"model.fsq_levels: every level must be >= 2 and the least common multiple of level // 2 at most "
            f"{MAX_CODE_STEPS} (so every code is exact in int8), got {list(levels)}; e.g. "
            "[8, 6, 5] or [] for the size rule"
        )
    if levels and (codebook := math.prod(levels)) > MAX_CODEBOOK:
        raise ConfigError(
            f"model.fsq_levels: the codebook (the product of the levels, {codebook}) must be "
            f"at most 2^32, the device's 32-bit code index, got {list(levels)}; use fewer or smaller "
            "levels, e.g. [8, 8, 8, 8, 5, 5, 5, 5], or [] for the size rule"
        )
    if config.model.channels and (
        len(config.model.channels) != 3 or min(config.model.channels) < 1
    ):
        raise ConfigError(
            "model.channels: give 3 positive widths, e.g. [16, 32, 32], or [] for model.size"
        )


def has_val_split(data: DataConfig) -> bool:
    """Whether a run has val windows: a val share above 0, or a cross-validation fold."""
    return data.split_fractions[1] > 0 or data.cv_folds > 0


def _check_no_val(config: RunConfig) -> None:
    """Refuse what needs validation windows when there are none."""
    if has_val_split(config.data):
        return
    if config.train.checkpoint == "best":
        raise ConfigError(
            "train.checkpoint=best selects on validation, but data.split_fractions has a val share "
            "of 0; use train.checkpoint=last or train_loss, or give val a share, e.g. [0.7, 0.15, 0.15]"
        )


def _check_folds(data: DataConfig) -> None:
    folds, fold = data.cv_folds, data.cv_fold
    if folds == 1:
        raise ConfigError(
            "data.cv_folds: 0 (the val cut of data.split_fractions) or at least 2 folds, got 1; e.g. 5"
        )
    if folds and data.split_mode != "official":
        raise ConfigError(
            f"data.cv_folds: cross-validates the source's own train split, so it needs "
            f"data.split_mode=official, got {data.split_mode}; set data.cv_folds=0 for {data.split_mode}"
        )
    if fold >= max(folds, 1):  # without folds, fold 0 is the only one
        raise ConfigError(
            f"data.cv_fold: must be below data.cv_folds ({folds}), got {fold}; folds are numbered from 0"
        )


def parse_set_option(item: str) -> tuple[list[str], Any]:
    """Parse one `--set section.key=value`; the value is read as YAML (so 3, 0.1, [8,6,5], true work)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected section.key=value, e.g. --set train.lr=0.001")
    key, raw = item.split("=", 1)
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key.strip().split("."), value


def _nest(path: list[str], value: Any) -> dict[str, Any]:
    result: dict[str, Any] = {path[-1]: value}
    for part in reversed(path[:-1]):
        result = {part: result}
    return result


def read_yaml(path: str | Path) -> dict[str, Any]:
    """A YAML config file as a mapping; one-line errors for a missing, non-UTF-8 or invalid file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"config file not found: {path}; pass an existing YAML file to --config")
    try:
        loaded = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except UnicodeDecodeError as err:
        raise ConfigError(f"config file {path} is not UTF-8 text; save it as UTF-8") from err
    except yaml.YAMLError as err:
        line = getattr(getattr(err, "problem_mark", None), "line", None)
        where = f" (line {line + 1})" if line is not None else ""
        raise ConfigError(f"config file {path} is not valid YAML{where}; fix the syntax") from err
    if not isinstance(loaded, dict):
        raise ConfigError(
            f"config file {path} must hold a mapping of sections (data:, model:, ...)"
        )
    return loaded


def preset_path(name: str) -> Path:
    """Path of a bundled preset such as 'default' or 'tiny'."""
    with resources.as_file(resources.files("edgekit.configs") / f"{name}.yaml") as path:
        return Path(path)


def load_config(
    config_file: str | Path | None = None,
    overrides: list[str] | tuple[str, ...] = (),
    base: RunConfig | None = None,
) -> RunConfig:
    """Build the run config: `base` (a run's own config) or the defaults with `configs/default.yaml`,
    then a user file or preset name, then `--set` items."""
    config = base if base is not None else _merge(RunConfig(), read_yaml(preset_path("default")))
    if config_file is not None:
        candidate = Path(config_file)
        if not candidate.exists() and not candidate.suffix:
            candidate = preset_path(str(config_file))
            if not candidate.exists():
                raise ConfigError(
                    f"no config file or preset named '{config_file}'; try 'default' or 'tiny'"
                )
        config = _merge(config, read_yaml(candidate))
    for item in overrides:
        path, value = parse_set_option(item)
        config = _merge(config, _nest(path, value))
    _validate(config)
    return config


def load_run_config(run_dir: str | Path) -> RunConfig:
    """Rebuild the config a run was made with from its `config.resolved.yaml`."""
    path = Path(run_dir) / layout.CONFIG
    if not Path(run_dir).is_dir():
        raise ConfigError(
            f"run directory {run_dir} does not exist; run `edgekit train --out {run_dir}` first"
        )
    if not path.is_file():
        raise ConfigError(
            f"{run_dir} is not an edgekit run (no config.resolved.yaml); run `edgekit train` first"
        )
    values = _drop_retired(read_yaml(path))
    for key, before in ADDED_KEYS.items():
        section, name = key.split(".")
        if isinstance(values.get(section), dict):
            values[section].setdefault(name, before)
    config = _merge(RunConfig(), values)
    _validate(config)
    return config
