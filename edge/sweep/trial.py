"""One trial of a sweep, the same under Optuna and Ray: apply the parameters, check the budget on the
untrained network, train both phases with the default recipe, score the int8 model on validation.

The test split is never read here: a trial trains and scores on train and val only (the chosen
model meets the test split once, in the sweep's final run).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.config import RunConfig, has_val_split
from edgekit.data.prepare import PreparedData
from edgekit.errors import ConfigError, DataError, EdgekitError
from edgekit.sweep.budget import Budget, figures_of
from edgekit.sweep.space import SearchSpace

NO_VAL_TO_SCORE = (
    "a trial is scored on validation, but this one's data.split_fractions has a val share of 0; "
    "search val shares above 0 (the base config's 0 is searched with a val cut)"
)


@dataclass(frozen=True)
class SweepSetup:
    """Everything a trial needs, picklable: Ray ships it to its workers once."""

    base: RunConfig
    space: SearchSpace
    target: str
    budget: Budget
    data: PreparedData  # prepared for base.data; a trial that changes data.* prepares its own
    threads: int = 1  # torch CPU threads per trial


@dataclass
class TrialOutcome:
    """What a trial gives back: its status, score, figures and curve."""

    status: str  # complete | over_budget | invalid | failed
    value: float | None = None  # the int8 model's validation score (the selection metric)
    figures: dict[str, Any] = field(default_factory=dict)
    reason: str = ""
    scores: dict[str, float] = field(default_factory=dict)  # val accuracy / macro-F1, both models
    epochs: int = 0
    seconds: float = 0.0

    def attributes(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "reason": self.reason,
            "figures": self.figures,
            "scores": self.scores,
            "epochs": self.epochs,
            "seconds": round(self.seconds, 2),
        }


def first_rung(setup: SweepSetup) -> int:
    """Epochs every trial trains before the pruner compares it: a ninth of the planned epochs (rungs
    at 1/9, 1/3 and all of them with halving by 3), so early, noisy epochs prune nothing."""
    return max(1, (setup.base.train.float_epochs + setup.base.train.qat_epochs) // 9)


def trial_data(setup: SweepSetup, config: RunConfig) -> PreparedData:
    """The prepared data of a trial: the sweep's own unless the trial changed data.* keys."""
    if config.data == setup.base.data:
        return setup.data
    from edgekit.data.prepare import prepare_data

    return prepare_data(config.data)


def check_budget(
    setup: SweepSetup, config: RunConfig, data: PreparedData
) -> tuple[dict[str, Any], TrialOutcome | None]:
    """The trial's figures from its untrained network, and an outcome if it may not train (over
    budget) or cannot (a network the data's windows cannot carry)."""
    from edgekit.models import Conv2dFSQNet
    from edgekit.train.loop import net_config_for

    try:
        model = Conv2dFSQNet(net_config_for(config, data, quant=False))
    except (DataError, ConfigError, ValueError) as err:
        return {}, TrialOutcome("invalid", reason=str(err))
    figures = figures_of(model, setup.target, setup.budget, config.export.opset)
    over = setup.budget.violations(figures)
    return figures, (
        TrialOutcome("over_budget", figures=figures, reason="; ".join(over)) if over else None
    )


def run_trial(
    setup: SweepSetup,
    params: dict[str, Any],
    folder: Path,
    report: Callable[[int, float], None],
    on_figures: Callable[[dict[str, Any]], None] = lambda figures: None,
) -> TrialOutcome:
    """Check, train and score one trial; `on_figures` gets the budget figures before training,
    `report(epoch, val_score)` after every epoch may raise to prune it. The trial's folder keeps
    its config and history; its checkpoints are removed."""
    import torch
    from edgekit.rundir import layout
    from edgekit.rundir.artifacts import Manifest, write_json, write_text
    from edgekit.train.loop import Trainer, pick_device, train_both_phases

    started = time.perf_counter()
    try:
        config = setup.space.config_for(setup.base, params)
        data = trial_data(setup, config)
    except (ConfigError, DataError) as err:
        return TrialOutcome("invalid", reason=str(err))
    if not has_val_split(config.data):
        return TrialOutcome("invalid", reason=NO_VAL_TO_SCORE)
    figures, rejected = check_budget(setup, config, data)
    if rejected is not None:
        rejected.seconds = time.perf_counter() - started
        return rejected
    on_figures(figures)
    folder.mkdir(parents=True, exist_ok=True)
    write_text(folder / layout.CONFIG, config.to_yaml())
    torch.set_num_threads(setup.threads)
    history: list[dict[str, Any]] = []
    trainer = Trainer(
        config.train,
        config.augment,
        data,
        Manifest(folder),
        pick_device(config.train.device),
        False,
    )
    trainer.on_epoch = lambda row: report(len(history), float(row[_score_key(trainer.select_on)]))
    try:
        float_model, qat_model = train_both_phases(trainer, config, history)
    except EdgekitError as err:
        return TrialOutcome("failed", figures=figures, reason=str(err))
    finally:
        write_json(folder / "history.json", history)
        shutil.rmtree(folder / layout.CHECKPOINTS, ignore_errors=True)
    qat, flt = trainer.validate(qat_model), trainer.validate(float_model)
    assert qat is not None and flt is not None  # a trial without a val split is refused above
    scores = {
        "int8_val_accuracy": qat["accuracy"],
        "int8_val_macro_f1": qat["macro_f1"],
        "float_val_accuracy": flt["accuracy"],
        "float_val_macro_f1": flt["macro_f1"],
    }
    return TrialOutcome(
        "complete",
        qat[trainer.select_on],
        figures,
        scores=scores,
        epochs=len(history),
        seconds=time.perf_counter() - started,
    )


def _score_key(select_on: str) -> str:
    return "val_macro_f1" if select_on == "macro_f1" else "val_acc"
