"""The local engine: an Optuna study (TPE sampler, successive-halving pruner on epochs) in a journal
file inside the sweep folder, run by one process or several local worker processes sharing it.

The journal needs no server and works on NFS; a killed sweep leaves its finished trials there, and
the next run marks the trials that were running as failed and queues their parameters again.
"""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import ArtifactError
from edgekit.sweep.results import TrialRow, progress_line, row_from_attributes
from edgekit.sweep.space import SearchSpace
from edgekit.sweep.trial import SweepSetup, first_rung, run_trial

STUDY_NAME = "edgekit-sweep"
JOURNAL = "study.journal"
INTERRUPTED = "interrupted"  # user attr status of a trial a kill or Ctrl-C cut short


def open_study(folder: Path, seed: int, min_resource: int) -> Any:
    """The sweep's study in `folder/study.journal` (made on first use). The sampler's seed moves
    on with the trials already there, so a resumed sweep draws new parameters."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    journal = folder / JOURNAL
    try:  # replays the journal: a damaged one fails here, with whatever Optuna's parser raises
        study = optuna.create_study(
            study_name=STUDY_NAME,
            storage=JournalStorage(JournalFileBackend(str(journal))),
            direction="maximize",
            pruner=optuna.pruners.SuccessiveHalvingPruner(
                min_resource=min_resource, reduction_factor=3
            ),
            load_if_exists=True,
        )
    except (ValueError, KeyError, TypeError, AssertionError) as err:
        raise ArtifactError(
            f"{journal} is damaged ({type(err).__name__}: {err}); "
            f"sweep into a new --out, or remove {folder} to start over"
        ) from err
    study.sampler = optuna.samplers.TPESampler(seed=seed + len(study.trials))
    return study


def suggest(trial: Any, space: SearchSpace) -> dict[str, Any]:
    """A trial's parameters drawn from the space (or the ones enqueued for it)."""
    from optuna.distributions import CategoricalDistribution, IntDistribution

    params = {}
    for key, dist in space.distributions().items():
        if isinstance(dist, CategoricalDistribution):
            params[key] = trial.suggest_categorical(key, dist.choices)
        elif isinstance(dist, IntDistribution):
            params[key] = trial.suggest_int(key, dist.low, dist.high, step=dist.step, log=dist.log)
        else:
            params[key] = trial.suggest_float(
                key, dist.low, dist.high, step=dist.step, log=dist.log
            )
    return params


def recover_interrupted(study: Any) -> int:
    """Trials left running by a killed sweep become failed ones and their parameters are queued
    again (the sweep's lock guarantees no other process is running them); returns how many."""
    from optuna.trial import TrialState

    # Optuna has no public call to end another process's trial: the storage does it
    trials = study.get_trials(deepcopy=False)
    requeued = {t.user_attrs.get("requeue_of") for t in trials}
    recovered = 0
    for trial in trials:
        if trial.state == TrialState.RUNNING:
            study._storage.set_trial_user_attr(trial._trial_id, "status", INTERRUPTED)
            study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        elif trial.state != TrialState.FAIL or trial.user_attrs.get("status") != INTERRUPTED:
            continue
        if trial.number not in requeued:
            study.enqueue_trial(trial.params, user_attrs={"requeue_of": trial.number})
            recovered += 1
    return recovered


def finished(study: Any) -> int:
    """Trials with a result (complete, pruned or rejected), not counting interrupted ones."""
    from optuna.trial import TrialState

    return sum(
        t.state in (TrialState.COMPLETE, TrialState.PRUNED)
        for t in study.get_trials(deepcopy=False)
    )


def rows_of(study: Any) -> list[TrialRow]:
    """The trial table of a study; interrupted trials are left out (their parameters ran again)."""
    from optuna.trial import TrialState

    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.state == TrialState.WAITING or t.user_attrs.get("status") == INTERRUPTED:
            continue
        status = {TrialState.COMPLETE: "complete", TrialState.RUNNING: "running"}.get(t.state)
        rows.append(
            row_from_attributes(
                t.number,
                t.params,
                t.user_attrs,
                sorted(t.intermediate_values.items()),
                status=status,
                value=t.value if t.state == TrialState.COMPLETE else None,
            )
        )
    return rows


def objective_for(setup: SweepSetup, folder: Path) -> Callable[[Any], float]:
    """The Optuna objective: run_trial with pruning on each epoch's validation score; rejected
    trials end pruned with their status (over_budget, invalid, failed) recorded."""
    import optuna

    def objective(trial: Any) -> float:
        params = suggest(trial, setup.space)
        started = time.perf_counter()
        epochs = 0

        def report(epoch: int, score: float) -> None:
            nonlocal epochs
            epochs = epoch
            trial.report(score, epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}")

        try:
            outcome = run_trial(
                setup,
                params,
                folder / "trials" / f"{trial.number:04d}",
                report,
                lambda figures: trial.set_user_attr("figures", figures),
            )
        except optuna.TrialPruned:
            for key, value in {
                "status": "pruned",
                "epochs": epochs,
                "seconds": round(time.perf_counter() - started, 2),
            }.items():
                trial.set_user_attr(key, value)
            raise
        except KeyboardInterrupt:
            trial.set_user_attr("status", INTERRUPTED)
            raise
        for key, value in outcome.attributes().items():
            trial.set_user_attr(key, value)
        if outcome.value is None:
            raise optuna.TrialPruned(outcome.reason)
        return outcome.value

    return objective


def run_local(
    setup: SweepSetup,
    folder: Path,
    trials: int,
    workers: int,
    seed: int,
    echo: Callable[[str], None],
) -> list[TrialRow]:
    """Run the sweep until `trials` trials have a result; returns the trial table."""
    study = open_study(folder, seed, first_rung(setup))
    recovered = recover_interrupted(study)
    done = finished(study)
    if done or recovered:
        echo(f"resuming: {done} trials finished, {recovered} interrupted trial(s) queued again")
    remaining = max(0, trials - done)
    shares = [remaining // workers + (i < remaining % workers) for i in range(workers)]
    if workers == 1:
        _optimize(study, setup, folder, shares[0], (trials, workers), echo)
    else:
        context = multiprocessing.get_context("spawn")
        processes = [
            context.Process(
                target=_worker, args=(setup, folder, seed + 1000 * i, share, (trials, workers))
            )
            for i, share in enumerate(shares)
            if share
        ]
        for process in processes:
            process.start()
        try:
            for process in processes:
                process.join()
        finally:
            for process in processes:
                if process.is_alive():
                    process.terminate()
                    process.join()
    return rows_of(study)  # the journal is read again: the workers' trials are there


def _optimize(
    study: Any,
    setup: SweepSetup,
    folder: Path,
    count: int,
    tally: tuple[int, int],
    echo: Callable[[str], None],
) -> None:
    """`count` trials of `study` in this process; `tally` (trials in all, workers) for the ETA."""
    total, workers = tally

    def announce(study: Any, frozen: Any) -> None:
        rows = rows_of(study)
        row = next((r for r in rows if r.number == frozen.number), None)
        if row is not None:
            echo(progress_line(row, rows, total, workers))

    if count:
        study.optimize(objective_for(setup, folder), n_trials=count, callbacks=[announce])


def _worker(setup: SweepSetup, folder: Path, seed: int, count: int, tally: tuple[int, int]) -> None:
    """One local worker process: its share of the trials, on the shared journal."""
    study = open_study(folder, seed, first_rung(setup))
    _optimize(study, setup, folder, count, tally, lambda line: print(line, flush=True))
