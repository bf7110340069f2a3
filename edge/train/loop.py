"""`edgekit train`: float twin with BatchNorm -> fold BN -> calibrate -> quantization-aware training.

Folding BatchNorm before QAT (not after) is what keeps int8 accuracy (Brevitas #388: 93.9 -> 88.9 %
when folded after). Both phases use gradient clipping and a schedule and keep the epoch
`train.checkpoint` names (the final one by default; the best on validation, with early stopping, on
request); `last.pt` holds everything needed to resume exactly.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from edgekit import plots
from edgekit.config import AugmentConfig, RunConfig, TrainConfig
from edgekit.data.prepare import PreparedData, prepare_data, row_layout
from edgekit.errors import CheckpointError, ConfigError, DataError, TrainingError
from edgekit.evaluate import (
    classification_metrics,
    evaluate_model,
    model_cost,
    predict,
    small_test_warning,
)
from edgekit.models import Conv2dFSQNet, NetConfig
from edgekit.models.transforms import float_with_qat_weights, folded_float_state
from edgekit.progress import Progress
from edgekit.quantize.activations import activation_ranges, calibrate_activations
from edgekit.rundir import layout
from edgekit.rundir.artifacts import Manifest, write_json, write_text
from edgekit.rundir.checkpoint import load_checkpoint, read_checkpoint, save_checkpoint
from edgekit.rundir.run import Run, clear_outputs
from edgekit.rundir.transaction import keep_on_failure, transactional
from edgekit.train.augment import augment_batch, mixup_batch, resolve_shift_step
from edgekit.train.averaging import WeightAverage, ema_decay
from edgekit.train.fixed_stem import handcrafted_held
from edgekit.train.sizing import qat_lr_for, resolve_net, starting_input_step
from torch import nn


def pick_device(name: str) -> torch.device:
    """The torch device for `train.device`; cuda without a GPU is one clear error."""
    if name == "cuda" and not torch.cuda.is_available():
        raise TrainingError("train.device=cuda but no CUDA device is available; use --device cpu")
    return torch.device(
        "cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu"
    )


def net_config_for(config: RunConfig, data: PreparedData, quant: bool) -> NetConfig:
    """The network this run trains, from the config and the prepared data (the size rule fills gaps)."""
    channels, _, width = data.input_shape
    net = resolve_net(
        config.model, channels, data.num_classes, width, len(data.arrays["train"][1]), quant
    )
    if width < net.min_input_width():
        raise DataError(
            f"windows of {2 * width} samples are too short for "
            f"kernel_size={net.kernel_size}, stem_kernel={net.stem()} "
            f"(need >= {2 * net.min_input_width()}); use longer windows (data.window_length) or a "
            "smaller model.kernel_size / model.stem_kernel"
        )
    return net


def phase_nets(
    config: RunConfig, data: PreparedData, resume_state: dict[str, Any] | None
) -> tuple[NetConfig, NetConfig]:
    """The float phases' network (BatchNorm, no quantizers) and the QAT model's (the same widths
    and geometry, quantized), resolved once. A resumed run takes the network its checkpoint holds,
    so a run interrupted under an earlier size rule resumes the network it started."""
    if resume_state is not None:
        net = NetConfig.from_dict(resume_state["net_config"])
    else:  # the dither's amplitude from the train windows: only a trained network needs it
        step = starting_input_step(data.arrays["train"][0], config.model.input_percentile)
        net = replace(
            net_config_for(config, data, quant=False), input_dither=config.model.input_dither * step
        )
    quantized = replace(net, quant_preset=config.model.quant_preset, batch_norm=False)
    return replace(net, quant_preset=None, batch_norm=True), quantized


CHECKPOINT_RULE_TEXT = {  # report.md's line for each train.checkpoint rule
    "best": "checkpoints selected on validation {metric} (macro-F1 when the largest train class "
    "exceeds {ratio}x the smallest, with train.select_on=auto)",
    "last": "each phase keeps its final epoch (train.checkpoint=last); validation only reported",
    "train_loss": "each phase keeps its epoch of lowest mean train loss (train.checkpoint=train_loss); "
    "validation only reported",
}
IMBALANCE_RATIO = 1.5  # largest / smallest train class above this: select checkpoints on macro-F1


def selection_metric(config: TrainConfig, y_train: np.ndarray, num_classes: int) -> str:
    """`train.select_on`, with `auto` resolved by the train split's class balance."""
    if config.select_on != "auto":
        return config.select_on
    counts = np.bincount(y_train, minlength=num_classes)
    counts = counts[counts > 0]
    return "macro_f1" if counts.max() > IMBALANCE_RATIO * counts.min() else "accuracy"


AUGMENT_STREAM = 7919  # offsets the augmentation generator's seed from the batch order's
# teacher i trains with train.seed + i * this: its own initial weights, batch order and noise
TEACHER_SEED_STRIDE = 1000
# softens both distributions so the teacher's ranking of the wrong classes carries signal; the loss
# is scaled by T^2 to keep its gradients on the scale of cross-entropy's (Hinton et al. 2015)
DISTILL_TEMPERATURE = 2.0


def distillation_loss(student_logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) of the temperature-softened outputs, times T^2; `soft_targets` are the
    teachers' softened probabilities (`teacher_probs`)."""
    log_student = nn.functional.log_softmax(student_logits / DISTILL_TEMPERATURE, dim=1)
    return DISTILL_TEMPERATURE**2 * nn.functional.kl_div(
        log_student, soft_targets, reduction="batchmean"
    )


@torch.no_grad()
def teacher_probs(teachers: list[Conv2dFSQNet], X: torch.Tensor) -> torch.Tensor:
    """The teachers' mean softened class probabilities for a batch (an ensemble's soft targets)."""
    return torch.stack(
        [nn.functional.softmax(t(X) / DISTILL_TEMPERATURE, dim=1) for t in teachers]
    ).mean(0)


def passes_per_epoch(config: TrainConfig, train_windows: int) -> int:
    """Passes over the train split that make one epoch of at least `min_epoch_steps` steps."""
    steps_per_pass = math.ceil(train_windows / config.batch_size)
    return max(1, math.ceil(config.min_epoch_steps / steps_per_pass))


def phase_batch_size(config: TrainConfig, phase: str) -> int:
    """Windows per batch in a phase: `qat_batch_size` for QAT when set, else `batch_size`."""
    return config.qat_batch_size if phase == "qat" and config.qat_batch_size else config.batch_size


def optimizer_steps_per_epoch(config: TrainConfig, train_windows: int, phase: str) -> int:
    """Optimizer steps in one epoch of a phase (batches of the epoch's passes, `grad_accum`
    batches a step)."""
    windows = passes_per_epoch(config, train_windows) * train_windows
    batches = math.ceil(windows / phase_batch_size(config, phase))
    return math.ceil(batches / config.grad_accum)


def epoch_order(config: TrainConfig, y_train: np.ndarray, epoch: int) -> np.ndarray:
    """Window indices for one epoch: seeded shuffles (or class-balanced draws with replacement),
    one per pass over the data."""
    generator = torch.Generator().manual_seed(config.seed * 100_003 + epoch)
    passes = passes_per_epoch(config, len(y_train))
    if config.sampler == "balanced":
        counts = np.bincount(y_train)
        weights = torch.from_numpy(1.0 / counts[y_train])
        return torch.multinomial(weights, passes * len(y_train), True, generator=generator).numpy()
    return torch.cat(
        [torch.randperm(len(y_train), generator=generator) for _ in range(passes)]
    ).numpy()


PHASE_CHECKPOINTS = {"float": "float.pt", "qat": "best.pt"}  # the rest: <phase>.pt


def phase_checkpoint(run_dir: Path, phase: str) -> Path:
    """The file holding the model a phase keeps (float.pt, best.pt, teacherN.pt)."""
    return run_dir / layout.CHECKPOINTS / PHASE_CHECKPOINTS.get(phase, f"{phase}.pt")


@dataclass
class PhaseState:
    """What a phase carries from epoch to epoch (saved in last.pt for --resume)."""

    epoch: int = 0  # epochs completed
    # (val accuracy or macro-F1, -val loss), or (-train loss, 0) with train.checkpoint=train_loss
    best_key: tuple[float, float] = (-math.inf, -math.inf)
    bad_epochs: int = 0


class Trainer:
    """Runs one phase over prepared arrays; writes last.pt every epoch and the phase's best checkpoint."""

    def __init__(
        self,
        config: TrainConfig,
        augment: AugmentConfig,
        data: PreparedData,
        manifest: Manifest,
        device: torch.device,
        show_progress: bool,
        on_epoch: Callable[[dict[str, Any]], None] | None = None,
    ) -> None:
        y_train = data.arrays["train"][1]
        if config.qat_lr == 0:  # auto, resolved from the train split like the widths
            config = replace(config, qat_lr=qat_lr_for(len(y_train), data.num_classes))
        self.config, self.data = config, data
        self.rows = row_layout(data.stats)  # how augmentation unfolds a window into its series
        self.augment = resolve_shift_step(augment, data.arrays["train"][0], self.rows)
        self.manifest, self.run_dir, self.device = manifest, manifest.run_dir, device
        self.show_progress = show_progress
        # called with each epoch's history row once it is checkpointed (a sweep prunes from it)
        self.on_epoch = on_epoch
        weights = None
        if config.class_weights:
            counts = np.bincount(y_train, minlength=data.num_classes).astype(np.float64)
            weights = torch.tensor(
                counts.sum() / (len(counts) * np.maximum(counts, 1)),
                dtype=torch.float32,
                device=device,
            )
        self.loss_fn = nn.CrossEntropyLoss(weight=weights, label_smoothing=config.label_smoothing)
        self.eval_loss = nn.CrossEntropyLoss()
        self.select_on = selection_metric(config, y_train, data.num_classes)

    def _optimizer(self, model: nn.Module, lr: float) -> torch.optim.Optimizer:
        kind = torch.optim.AdamW if self.config.optimizer == "adamw" else torch.optim.Adam
        # foreach: each update op over all parameters at once instead of a Python loop over them;
        # on CPU that runs the same per-tensor kernels in the same order, so the weights are
        # bitwise those of the loop, at ~0.45 ms less a step (CUDA's default already)
        return kind(model.parameters(), lr=lr, weight_decay=self.config.weight_decay, foreach=True)

    def _scheduler(self, optimizer: torch.optim.Optimizer, epochs: int) -> Any:
        if self.config.scheduler == "plateau":
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimizer, factor=0.5, patience=max(2, self.config.patience // 4)
            )
        warmup = self.config.warmup_epochs

        def factor(epoch: int) -> float:
            if epoch < warmup:
                return (epoch + 1) / (warmup + 1)
            return 0.5 * (1 + math.cos(math.pi * (epoch - warmup) / max(1, epochs - warmup)))

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)

    @torch.no_grad()
    def validate(self, model: Conv2dFSQNet) -> dict[str, float] | None:
        """Validation loss, accuracy and macro-F1, in batches (the split may be memory-mapped);
        None without a val split (`data.split_fractions` val share 0)."""
        X, y = self.data.arrays["val"]
        if not len(y):
            return None
        logits, _ = predict(model, X)
        scores = classification_metrics(y, logits.argmax(1), self.data.class_names)
        loss = self.eval_loss(torch.from_numpy(logits), torch.from_numpy(y))
        return {"loss": float(loss), "accuracy": scores["accuracy"], "macro_f1": scores["macro_f1"]}

    def batch_loss(
        self,
        model: Conv2dFSQNet,
        X: np.ndarray,
        y: np.ndarray,
        generator: torch.Generator,
        teachers: list[Conv2dFSQNet] | None = None,
    ) -> torch.Tensor:
        """Training loss of one batch, augmented (and mixed up) on the host first; with teachers,
        `train.distill_weight` of it matches their soft outputs on the same augmented batch."""
        X_batch = augment_batch(torch.from_numpy(X), self.augment, generator, self.rows)
        target = torch.from_numpy(y)
        if self.augment.mixup > 0:  # soft targets: each window's label share and its partner's
            X_batch, y_partner, weight = mixup_batch(X_batch, target, self.augment.mixup, generator)
            classes = self.data.num_classes
            target = weight[:, None] * nn.functional.one_hot(target, classes) + (
                1 - weight[:, None]
            ) * nn.functional.one_hot(y_partner, classes)
        X_batch = X_batch.to(self.device)
        logits = model(X_batch)
        loss = self.loss_fn(logits, target.to(self.device))
        if not teachers:
            return loss
        share = self.config.distill_weight
        soft = teacher_probs(teachers, X_batch)
        return (1 - share) * loss + share * distillation_loss(logits, soft)

    def run_phase(
        self,
        phase: str,
        model: Conv2dFSQNet,
        epochs: int,
        lr: float,
        history: list[dict[str, Any]],
        resume: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
        teachers: list[Conv2dFSQNet] | None = None,
    ) -> Conv2dFSQNet:
        """Train one phase ("float", "qat" or "teacherN") for `epochs`, checkpointing each epoch to
        last.pt and the epoch `train.checkpoint` keeps to float.pt/best.pt/teacherN.pt (under
        `best` and `train_loss` whenever the score improves, under `last` once, at the end);
        returns that model, which it reloads. With `train.ema_epochs` the model validated and kept
        is the moving average of the trained weights (last.pt carries both). `resume` continues
        from a last.pt of this phase; `teachers` (eval mode) are distilled from."""
        config = self.config
        optimizer = self._optimizer(model, lr)
        scheduler = self._scheduler(optimizer, epochs)
        state = PhaseState()
        if resume is not None:
            optimizer.load_state_dict(resume["optimizer"])
            scheduler.load_state_dict(resume["scheduler"])
            torch.set_rng_state(resume["rng_state"])
            state = PhaseState(resume["epoch"], tuple(resume["best_key"]), resume["bad_epochs"])
        best_path = phase_checkpoint(self.run_dir, phase)
        X, y = self.data.arrays["train"]
        average = None
        if config.ema_epochs > 0:  # validated and kept instead of the trained weights
            steps = optimizer_steps_per_epoch(config, len(y), phase)
            average = WeightAverage(model, ema_decay(config.ema_epochs, steps))
            if resume is not None:
                average.model.load_state_dict(resume["averaged_state"])
        kept = model if average is None else average.model
        parameters = list(model.parameters())  # clipping needs them every step: walk the tree once
        batch = phase_batch_size(config, phase)
        progress = Progress(epochs, f"{phase:>5}", enabled=self.show_progress)
        progress.update(state.epoch)
        with handcrafted_held(model) as restore_handcrafted:
            while state.epoch < epochs and (
                config.patience == 0 or state.bad_epochs < config.patience
            ):
                start = time.perf_counter()
                model.train()
                order = epoch_order(config, y, state.epoch)
                generator = torch.Generator().manual_seed(
                    config.seed * 100_003 + state.epoch + AUGMENT_STREAM
                )
                total_loss = 0.0
                optimizer.zero_grad(set_to_none=True)
                batches = np.array_split(order, range(batch, len(order), batch))
                for step, index in enumerate(batches, start=1):
                    loss = self.batch_loss(model, X[index], y[index], generator, teachers)
                    if not torch.isfinite(loss):
                        raise TrainingError(
                            f"training diverged ({phase} loss {loss.item()} at epoch "
                            f"{state.epoch + 1}) and was rolled back; "
                            "lower train.lr or enable train.grad_clip"
                        )
                    (loss / config.grad_accum).backward()
                    total_loss += float(loss.detach()) * len(index)
                    if step % config.grad_accum == 0 or step == len(batches):
                        if config.grad_clip > 0:
                            nn.utils.clip_grad_norm_(parameters, config.grad_clip)
                        optimizer.step()
                        restore_handcrafted()
                        optimizer.zero_grad(set_to_none=True)
                        if average is not None:
                            average.update(model)
                val = self.validate(kept)
                val_loss, val_acc = (None, None) if val is None else (val["loss"], val["accuracy"])
                lr_now = optimizer.param_groups[0]["lr"]
                train_loss = total_loss / len(order)
                # plateau steps on the val loss, or on the train loss (LITE's rule) without a val split
                if config.scheduler == "plateau":
                    scheduler.step(train_loss if val_loss is None else val_loss)
                else:
                    scheduler.step()
                state.epoch += 1
                key = (
                    (-train_loss, 0.0)
                    if config.checkpoint == "train_loss" or val is None
                    else (val[self.select_on], -val["loss"])
                )
                improved = config.checkpoint == "last" or key > state.best_key
                state.best_key, state.bad_epochs = (
                    (key, 0) if improved else (state.best_key, state.bad_epochs + 1)
                )
                history.append(
                    {
                        "phase": phase,
                        "step": state.epoch,
                        "train_loss": train_loss,
                        "val_loss": val_loss,
                        "val_acc": val_acc,
                        "val_macro_f1": None if val is None else val["macro_f1"],
                        "lr": lr_now,
                        "seconds": round(time.perf_counter() - start, 4),
                    }
                )
                if improved and config.checkpoint != "last":
                    save_checkpoint(
                        best_path,
                        kept,
                        phase=phase,
                        epoch=state.epoch,
                        val_acc=val_acc,
                        val_loss=val_loss,
                    )
                save_checkpoint(
                    self.run_dir / layout.CHECKPOINTS / "last.pt",
                    model,
                    phase=phase,
                    epoch=state.epoch,
                    best_key=list(state.best_key),
                    bad_epochs=state.bad_epochs,
                    optimizer=optimizer.state_dict(),
                    scheduler=scheduler.state_dict(),
                    rng_state=torch.get_rng_state(),
                    history=history,
                    **({} if average is None else {"averaged_state": average.model.state_dict()}),
                    **(extra or {}),
                )
                # so --resume can check them
                self.manifest.record(self.run_dir / layout.CHECKPOINTS)
                self.manifest.save()
                progress.update(
                    state.epoch, loss=total_loss / len(order), val_acc=val_acc, lr=lr_now
                )
                if self.on_epoch is not None:
                    self.on_epoch(history[-1])
        progress.close()
        if config.checkpoint == "last":
            # the final epoch is the one kept: written once, not every epoch (3-9 ms a save on
            # the bundled model), also when a resume finds every epoch done
            final: dict[str, Any] = next((r for r in reversed(history) if r["phase"] == phase), {})
            save_checkpoint(
                best_path,
                kept,
                phase=phase,
                epoch=state.epoch,
                val_acc=final.get("val_acc"),
                val_loss=final.get("val_loss"),
            )
            self.manifest.record(best_path)
            self.manifest.save()
        best, _ = load_checkpoint(best_path)
        return best.to(self.device)


# Keys a resumed run may change: they steer the remaining epochs, not the data, the network or
# anything already trained. Everything else would mix two runs in one folder.
RESUME_SAFE_KEYS = frozenset(
    {
        "train.float_epochs",
        "train.qat_epochs",
        "train.patience",
        "train.lr",
        "train.qat_lr",
        "train.device",
        "train.threads",
    }
)


def resume_changes(saved: RunConfig, requested: RunConfig) -> dict[str, list[Any]]:
    """`{key: [old, new]}` for the safe keys that differ; refuses any other difference."""
    old, new = saved.to_dict(), requested.to_dict()
    changed = {
        f"{section}.{key}": [old[section][key], new[section][key]]
        for section in new
        for key in new[section]
        if old.get(section, {}).get(key) != new[section][key]
    }
    unsafe = sorted(set(changed) - RESUME_SAFE_KEYS)
    if unsafe:
        key = unsafe[0]
        raise ConfigError(
            f"--resume keeps the run's own config, but {key} would change "
            f"({changed[key][0]!r} -> {changed[key][1]!r}); "
            f"resume changing only {', '.join(sorted(RESUME_SAFE_KEYS))}, or train into a new --out"
        )
    return changed


RESUMED_FROM = (layout.CONFIG, layout.MANIFEST, layout.DATA, layout.CHECKPOINTS)


def start_qat_model(
    float_model: Conv2dFSQNet, net: NetConfig, X_calib: np.ndarray, batch_size: int
) -> Conv2dFSQNet:
    """QAT model initialised from the folded float twin, activation ranges calibrated on train windows."""
    model = Conv2dFSQNet(net).to(next(float_model.parameters()).device)
    missing, unexpected = model.load_state_dict(folded_float_state(float_model), strict=False)
    real_missing = [k for k in missing if "quant" not in k]
    if unexpected or real_missing:
        raise CheckpointError(
            f"cannot map float weights onto the QAT model (missing {real_missing}, unexpected {unexpected})"
        )
    calibrate_activations(model, X_calib, batch_size)
    return model


@transactional(create=True)
def run_training(
    run: Run | str | Path,
    config: RunConfig,
    *,
    resume: bool = False,
    data: PreparedData | None = None,
    show_progress: bool = True,
) -> dict[str, Any]:
    """Train float twin then QAT model into the run's folder (made if missing); returns the
    metrics written to `metrics.json`.

    A failure rolls the run back. So does Ctrl-C/SIGTERM when the folder held a finished run;
    otherwise the interrupted training is kept for `--resume`.
    """
    run_dir = layout.run_path(run)
    unfinished = not (run_dir / "metrics.json").is_file()
    try:
        return _train(config, run_dir, resume, data, show_progress)
    except KeyboardInterrupt as err:
        if unfinished and (run_dir / layout.CHECKPOINTS / "last.pt").is_file():
            keep_on_failure(run_dir)
            err.args = (
                f"{str(err) or 'Ctrl-C'}; continue with `edgekit train --out {run_dir} --resume`",
            )
        raise


def _train(
    config: RunConfig, run_dir: Path, resume: bool, data: PreparedData | None, show_progress: bool
) -> dict[str, Any]:
    started = time.perf_counter()
    last_path = run_dir / layout.CHECKPOINTS / "last.pt"
    resume_state, changed = None, {}
    if resume:
        if not last_path.is_file():
            raise CheckpointError(f"--resume: no {last_path}; start without --resume")
        run = Run(run_dir)  # config, data and last.pt checked against the manifest
        changed = resume_changes(run.config, config)
        run.verified("checkpoints/last.pt")
        resume_state = read_checkpoint(last_path)
        data = run.data  # the split training started on, untouched
    # a new model: no checkpoint, calibration, export or report of the old one may survive
    clear_outputs(run_dir, keep=RESUMED_FROM if resume else ())
    if config.train.threads:
        torch.set_num_threads(config.train.threads)
    device = pick_device(config.train.device)
    if data is None:
        data = prepare_data(config.data, folder=run_dir / "data")
    elif not resume:
        data.save(run_dir / "data")
    write_text(run_dir / layout.CONFIG, config.to_yaml())
    manifest = Manifest(run_dir)
    manifest.data["config_hash"] = config.digest()
    manifest.record(run_dir / layout.CONFIG, run_dir / layout.DATA)
    manifest.save()
    trainer = Trainer(config.train, config.augment, data, manifest, device, show_progress)
    history: list[dict[str, Any]] = list(resume_state["history"]) if resume_state else []
    if resume_state is not None and changed:
        history.append({"phase": "resume", "step": len(history), "changed": changed})
    float_model, qat_model = train_both_phases(trainer, config, history, resume_state)
    seconds = time.perf_counter() - started
    metrics = summarise(
        float_model, qat_model, data, seconds, trainer.select_on, config.train.checkpoint
    )
    metrics["augment_shift_step"] = trainer.augment.shift_step  # auto resolved from the windows
    metrics["qat_lr"] = trainer.config.qat_lr  # train.qat_lr=0 resolved from the windows
    write_outputs(run_dir, history, metrics, data.class_names)
    manifest.record(run_dir / layout.CHECKPOINTS, run_dir / "metrics.json")
    manifest.stage("train", seconds, device=str(device))
    manifest.save()
    return metrics


def teacher_phases(config: TrainConfig) -> list[str]:
    """The extra float models trained before the float twin to be distilled from (none without
    distillation)."""
    return [f"teacher{i}" for i in range(1, config.teachers)] if config.distill_weight > 0 else []


def as_teacher(model: Conv2dFSQNet) -> Conv2dFSQNet:
    """The model frozen in place, in eval mode (BatchNorm on running statistics, no dropout)."""
    model.eval()
    return model.requires_grad_(False)


def train_float_model(
    trainer: Trainer,
    config: RunConfig,
    phase: str,
    history: list[dict[str, Any]],
    resume_state: dict[str, Any] | None,
    teachers: list[Conv2dFSQNet],
    net: NetConfig,
) -> Conv2dFSQNet:
    """One float phase (the twin or a teacher), from weights seeded by the trainer's seed alone."""
    torch.manual_seed(trainer.config.seed)
    model = Conv2dFSQNet(net).to(trainer.device)
    if resume_state is not None:
        model.load_state_dict(resume_state["model_state"])
    return trainer.run_phase(
        phase,
        model,
        config.train.float_epochs,
        config.train.lr,
        history,
        resume_state,
        teachers=teachers,
    )


def train_both_phases(
    trainer: Trainer,
    config: RunConfig,
    history: list[dict[str, Any]],
    resume_state: dict[str, Any] | None = None,
) -> tuple[Conv2dFSQNet, Conv2dFSQNet]:
    """The float twin, then the QAT model started from it (BatchNorm folded, activation ranges
    calibrated on train windows); each the epoch `train.checkpoint` keeps. `resume_state` (a last.pt)
    continues the phase it was written in.

    With `train.distill_weight` > 0 the twin distills from `train.teachers - 1` float models of
    other seeds trained first, and the QAT model from those and the twin: their mean soft outputs
    carry what an ensemble knows into the one deployed network, and anchor QAT to the float model
    it starts from."""
    data, device = trainer.data, trainer.device
    phases = [*teacher_phases(config.train), "float", "qat"]
    resumed_at = phases.index(resume_state["phase"]) if resume_state is not None else 0
    float_net, qat_net = phase_nets(config, data, resume_state)
    float_models: list[Conv2dFSQNet] = []
    for index, phase in enumerate(phases[:-1]):
        if index < resumed_at:  # finished before the interruption
            model, _ = load_checkpoint(phase_checkpoint(trainer.run_dir, phase))
            float_models.append(model.to(device))
            continue
        phase_trainer = trainer
        if phase != "float":  # a teacher: its own seed, and no sweep pruning on its epochs
            seed = config.train.seed + (index + 1) * TEACHER_SEED_STRIDE
            phase_trainer = Trainer(
                replace(config.train, seed=seed),
                trainer.augment,
                data,
                trainer.manifest,
                device,
                trainer.show_progress,
            )
        state = resume_state if index == resumed_at else None
        teachers = [as_teacher(m) for m in float_models] if phase == "float" else []
        float_models.append(
            train_float_model(phase_trainer, config, phase, history, state, teachers, float_net)
        )
    float_model = float_models[-1]
    qat_resume = resume_state if resumed_at == len(phases) - 1 else None
    if qat_resume is None:
        qat_model = start_qat_model(float_model, qat_net, data.arrays["train"][0], 64)
    else:
        qat_model = Conv2dFSQNet(qat_net).to(device)
        qat_model.load_state_dict(qat_resume["model_state"])
    teachers = [as_teacher(m) for m in float_models] if config.train.distill_weight > 0 else []
    qat_model = trainer.run_phase(
        "qat",
        qat_model,
        config.train.qat_epochs,
        trainer.config.qat_lr,
        history,
        qat_resume,
        teachers=teachers,
    )
    return float_model, qat_model


def summarise(
    float_model: Conv2dFSQNet,
    qat_model: Conv2dFSQNet,
    data: PreparedData,
    seconds: float,
    selection: str,
    checkpoint_rule: str,
) -> dict[str, Any]:
    """metrics.json: test and val metrics of both models, cost, splits, warnings, timings."""
    X_test, y_test = data.arrays["test"]
    test = evaluate_model(qat_model, X_test, y_test, data.class_names)
    float_test = evaluate_model(float_model, X_test, y_test, data.class_names)
    # The same learned weights with activation quantizers off (what Hailo gets): the pure cost of
    # quantizing activations, free of the extra fine-tuning the QAT epochs give.
    float_view = evaluate_model(
        float_with_qat_weights(qat_model).to(next(qat_model.parameters()).device),
        X_test,
        y_test,
        data.class_names,
    )
    train_codes = evaluate_model(qat_model, *data.arrays["train"], data.class_names)["fsq"]
    X_val, y_val = data.arrays["val"]
    has_val = len(y_val) > 0  # None below without a val split

    def val_accuracy(model: Conv2dFSQNet) -> float | None:
        return (
            evaluate_model(model, X_val, y_val, data.class_names)["accuracy"] if has_val else None
        )

    metrics = {
        "test": test,
        "float_test_accuracy": float_test["accuracy"],
        "int8_test_accuracy": test["accuracy"],
        "int8_minus_float_pp": 100 * (test["accuracy"] - float_test["accuracy"]),
        "int8_val_accuracy": val_accuracy(qat_model),
        "float_val_accuracy": val_accuracy(float_model),
        "qat_float_view_test_accuracy": float_view["accuracy"],
        "int8_minus_float_view_pp": 100 * (test["accuracy"] - float_view["accuracy"]),
        "fsq_train": train_codes,
        "cost": model_cost(qat_model),
        "model": {
            "channels": list(qat_model.config.channels),
            "kernel_size": qat_model.config.kernel_size,
            "stem_kernel": qat_model.config.stem(),
            "downsample": qat_model.config.downsample,
            "dilated_stages": qat_model.config.dilated_stages,
            "pooled_stages": qat_model.config.pooled_stages,
            "input_percentile": qat_model.config.input_percentile,
            # peak-to-peak, normalised units and steps of the learned int8 input grid
            "input_dither": qat_model.config.input_dither,
            "input_dither_steps": qat_model.config.input_dither
            / activation_ranges(qat_model)["input_quant"]["scale"],
            "fsq_levels": list(qat_model.config.fsq_levels),
            "handcrafted_filters": qat_model.config.handcrafted_filters,
        },
        "splits": {name: len(y) for name, (_, y) in data.arrays.items()},
        "selection_metric": selection,
        "checkpoint_rule": checkpoint_rule,
        "data_warnings": data.warnings + small_test_warning(len(y_test)),
        "train_seconds": round(seconds, 2),
    }
    if "test" in data.official_test and data.official_test["test"].any():
        mask = data.official_test["test"]
        metrics["official_test_windows_in_test_split"] = int(mask.sum())
    return metrics


def write_outputs(
    run_dir: Path, history: list[dict[str, Any]], metrics: dict[str, Any], class_names: list[str]
) -> None:
    """history.json, metrics.json and report.md of a finished training."""
    write_json(run_dir / "history.json", history)
    write_json(run_dir / "metrics.json", metrics)
    write_text(run_dir / "report.md", render_report(metrics, class_names))
    plots.training_curves(history, run_dir / "curves.png")
    plots.confusion_matrix(
        metrics["test"]["confusion_matrix"], class_names, run_dir / "confusion.png"
    )
    fsq = metrics["fsq_train"]
    plots.code_usage(fsq["code_counts"], fsq["codebook_size"], run_dir / "fsq_codes.png")


def render_report(metrics: dict[str, Any], class_names: list[str]) -> str:
    """report.md: what a reader checks after training, in tables."""
    test, cost, fsq = metrics["test"], metrics["cost"], metrics["fsq_train"]
    model = metrics["model"]
    rule = CHECKPOINT_RULE_TEXT[metrics["checkpoint_rule"]].format(
        metric=metrics["selection_metric"], ratio=IMBALANCE_RATIO
    )
    low, high = test["accuracy_interval_95"]
    lines = [
        "# Training report",
        "",
        f"- test accuracy int8 (QAT): **{test['accuracy']:.4f}** (95 % interval {low:.3f}-{high:.3f}, "
        f"{test['windows']} windows), float twin: {metrics['float_test_accuracy']:.4f} "
        f"({metrics['int8_minus_float_pp']:+.2f} pp)",
        f"- baselines on this test split: random {test['random_baseline']:.3f}, "
        f"majority class {test['majority_baseline']:.3f}",
        f"- QAT weights with activation quantizers off (the Hailo float export): "
        f"{metrics['qat_float_view_test_accuracy']:.4f} ({metrics['int8_minus_float_view_pp']:+.2f} pp)",
        "- windows train/val/test: "
        f"{metrics['splits']['train']}/{metrics['splits']['val']}/{metrics['splits']['test']}"
        + ("" if metrics["splits"]["val"] else " (no val split: data.split_fractions val share 0)"),
        f"- FSQ (train): {fsq['codes_used']}/{fsq['codebook_size']} codes used, perplexity {fsq['perplexity']:.1f}",
        f"- model: widths {model['channels']}, kernel {model['kernel_size']} "
        f"(stem {model['stem_kernel']}), {model['downsample']} "
        f"stages ({model['dilated_stages']} at full rate, {model['pooled_stages']} max-pooled), "
        f"FSQ levels {model['fsq_levels']}; "
        f"parameters {cost['parameters']}, MACs/window {cost['macs']}, int8 bytes {cost['int8_weight_bytes']}",
        f"- training time {metrics['train_seconds']} s; {rule}",
        *[f"- warning: {w}" for w in [*fsq["warnings"], *metrics["data_warnings"]]],
        "",
        "Per class on the test split (int8; recall = share of the class's windows found):",
        "",
        "| class | precision | recall | F1 | support |",
        "|---|---|---|---|---|",
        *[
            f"| {n} | {c['precision']:.3f} | {c['recall']:.3f} | {c['f1']:.3f} | {c['support']} |"
            for n, c in test["per_class"].items()
        ],
        "",
        "Confusion matrix (rows = true, columns = predicted): " + ", ".join(class_names),
        "",
        *["    " + " ".join(f"{v:4d}" for v in row) for row in test["confusion_matrix"]],
        "",
        "![confusion matrix, counts and share of each true class](confusion.png)",
        "",
        "Training: loss and validation accuracy per epoch, float twin then QAT:",
        "",
        "![training curves](curves.png)",
        "",
        f"FSQ code usage on the train split ({fsq['codes_used']} of {fsq['codebook_size']} codes):",
        "",
        "![FSQ code usage](fsq_codes.png)",
        "",
    ]
    return "\n".join(lines)
