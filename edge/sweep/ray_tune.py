"""The Ray engine (`--ray local|auto|HOST:PORT|ray://HOST:10001`): the same trials as Ray Tune trials,
Ray Tune's OptunaSearch keeping the TPE sampler and the space, ASHA pruning on epochs.

Ray is an optional extra (`uv sync --extra ray`). The guards its issue tracker taught: usage stats
off unless the user turned them on; a short private temp dir for a local cluster (AF_UNIX paths are
limited to 107 bytes); a bounded object store; torch threads set from the trial's CPUs (Ray sets
OMP_NUM_THREADS per trial); absolute paths only (trials change directory); `ray.shutdown()` in
`finally`, and never `ray stop` (it kills every Ray process of the machine).
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from edgekit.errors import ConfigError
from edgekit.sweep.results import TrialRow, progress_line, row_from_attributes
from edgekit.sweep.trial import SweepSetup, first_rung, run_trial

OBJECT_STORE_BYTES = 256 * 1024**2  # the prepared data is shipped once; trials send back numbers
EXPERIMENT = "edgekit"
CONNECT_TIMEOUT_S = 5.0
INSTALL_HINT = "install the extra: uv sync --extra ray (or pip install 'edgekit[ray]')"


def _import_ray() -> Any:
    # Ray's `uv run` hook would package the working directory for every worker and start them
    # through uv (slow, and it stalled local clusters here); RAY_ENABLE_UV_RUN_RUNTIME_ENV=1 turns
    # it back on. Set before Ray is imported, as the hook reads it then.
    os.environ.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")  # with verbose=0: no tables of its own
    try:
        import ray
        from ray._private import ray_constants
    except ImportError as err:
        raise ConfigError(f"--ray needs Ray, which is not installed; {INSTALL_HINT}") from err
    # Ray read the variable when it was first imported, perhaps before this function ran
    ray_constants.RAY_ENABLE_UV_RUN_RUNTIME_ENV = os.environ["RAY_ENABLE_UV_RUN_RUNTIME_ENV"] != "0"
    return ray


def _check_reachable(address: str) -> None:
    """A HOST:PORT or ray://HOST:PORT that takes no TCP connection is refused at once (Ray itself
    would retry for minutes)."""
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise ConfigError(f"--ray {address}: expected local, auto, HOST:PORT or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as err:
        raise ConfigError(
            f"--ray {address}: cannot reach a Ray cluster ({err.strerror or err}); start one "
            "with `ray start --head` and pass --ray auto, or use --ray local"
        ) from None


def connect(address: str) -> Callable[[], None]:
    """Start a private local cluster (`local`) or attach to one; returns what ends it again."""
    if address not in ("local", "auto"):
        _check_reachable(address)
    ray = _import_ray()
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    if ray.is_initialized():
        return lambda: None  # the caller's own Ray session: theirs to end
    temp = None
    try:
        if address == "local":
            temp = tempfile.mkdtemp(prefix="ekray", dir="/tmp")  # short: AF_UNIX path limit
            ray.init(
                num_cpus=os.cpu_count() or 1,
                include_dashboard=False,
                object_store_memory=OBJECT_STORE_BYTES,
                _temp_dir=temp,
                log_to_driver=False,
                configure_logging=False,
            )
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as err:
        if temp:
            shutil.rmtree(temp, ignore_errors=True)
        raise ConfigError(
            f"--ray {address}: cannot reach a Ray cluster ({str(err).splitlines()[0]}); start one "
            "with `ray start --head` and pass --ray auto, or use --ray local"
        ) from None

    def disconnect() -> None:
        ray.shutdown()
        if temp:
            shutil.rmtree(temp, ignore_errors=True)

    return disconnect


def _trainable(params: dict[str, Any], setup: SweepSetup) -> None:
    """One Ray Tune trial: run_trial, reporting each epoch's score and curve; the last report
    carries the outcome (`final`)."""
    from ray import tune

    curve: list[tuple[int, float]] = []
    figures: dict[str, Any] = {}
    started = time.perf_counter()

    def report(epoch: int, score: float) -> None:
        curve.append((epoch, score))
        tune.report(
            {
                "score": score,
                "epoch": epoch,
                "curve": json.dumps(curve),
                "figures": json.dumps(figures),
                "seconds": time.perf_counter() - started,
            }
        )

    with tempfile.TemporaryDirectory(prefix="edgekit-trial-") as folder:  # workers may be remote
        outcome = run_trial(setup, params, Path(folder), report, figures.update)
    tune.report(
        {
            "score": outcome.value if outcome.value is not None else 0.0,
            "epoch": len(curve),
            "curve": json.dumps(curve),
            "final": True,
            "attributes": json.dumps(outcome.attributes()),
            "seconds": outcome.seconds,
        }
    )


def row_of_result(
    number: int, params: dict[str, Any], metrics: dict[str, Any], error: bool
) -> TrialRow:
    """A trial-table row from a Ray trial's last reported metrics."""
    curve = [tuple(point) for point in json.loads(metrics.get("curve", "[]"))]
    if metrics.get("final"):
        attributes = json.loads(metrics["attributes"])
        complete = attributes["status"] == "complete"
        return row_from_attributes(
            number, params, attributes, curve, value=metrics["score"] if complete else None
        )
    status = "failed" if error else "pruned"
    attributes = {
        "status": status,
        "epochs": len(curve),
        "seconds": metrics.get("seconds", 0.0),
        "figures": json.loads(metrics.get("figures", "{}")),
    }
    return row_from_attributes(number, params, attributes, curve)


def run_on_ray(
    setup: SweepSetup,
    folder: Path,
    trials: int,
    seed: int,
    cluster: tuple[str, float],
    echo: Callable[[str], None],
) -> list[TrialRow]:
    """Run the sweep as Ray Tune trials on the cluster at `cluster` = (address, GPUs per trial),
    one CPU each (and that GPU share, when asked); resumes the experiment in `folder/ray` when one
    is there. Returns the trial table."""
    address, gpus = cluster
    disconnect = connect(address)
    try:
        return _tune(setup, folder.resolve(), trials, seed, gpus, echo)
    finally:
        disconnect()


def _tune(
    setup: SweepSetup,
    folder: Path,
    trials: int,
    seed: int,
    gpus: float,
    echo: Callable[[str], None],
) -> list[TrialRow]:
    import optuna
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search.optuna import OptunaSearch

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    epochs = setup.base.train.float_epochs + setup.base.train.qat_epochs
    trainable = tune.with_resources(
        tune.with_parameters(_trainable, setup=setup),
        {"cpu": setup.threads, **({"gpu": gpus} if gpus else {})},
    )
    rows: list[TrialRow] = []

    class Progress(tune.Callback):
        def on_trial_complete(
            self, iteration: int, trials: list[Any], trial: Any, **info: Any
        ) -> None:
            row = row_of_result(
                trial_number(trial.experiment_tag), trial.config, trial.last_result or {}, False
            )
            rows.append(row)
            echo(progress_line(row, rows, total, 1))

    total = trials
    storage = folder / "ray"
    if tune.Tuner.can_restore(str(storage / EXPERIMENT)):
        echo(f"resuming the Ray experiment in {storage / EXPERIMENT}")
        tuner = tune.Tuner.restore(
            str(storage / EXPERIMENT), trainable, resume_unfinished=True, restart_errored=True
        )
    else:
        searcher = OptunaSearch(
            space=setup.space.distributions(),
            metric="score",
            mode="max",
            sampler=optuna.samplers.TPESampler(seed=seed),
        )
        scheduler = ASHAScheduler(
            time_attr="epoch",
            max_t=epochs + 1,
            grace_period=first_rung(setup),
            reduction_factor=3,
        )
        tuner = tune.Tuner(
            trainable,
            tune_config=tune.TuneConfig(
                metric="score",
                mode="max",
                search_alg=searcher,
                scheduler=scheduler,
                num_samples=trials,
                # one actor runs trial after trial: a new one would import torch and edgekit
                # again (bench sweep: 12 ItalyPowerDemand trials 161 s -> 95 s on 2 cores)
                reuse_actors=True,
            ),
            run_config=tune.RunConfig(
                storage_path=str(storage), name=EXPERIMENT, verbose=0, callbacks=[Progress()]
            ),
        )
    grid = tuner.fit()
    rows = [
        row_of_result(
            trial_number(r.metrics["experiment_tag"]),
            r.config or {},
            r.metrics,
            r.error is not None,
        )
        for r in (grid[i] for i in range(len(grid)))
        if r.metrics
    ]
    return sorted(rows, key=lambda row: row.number)


def trial_number(experiment_tag: str) -> int:
    """The trial's place in the experiment, from 0: Ray tags trials `<1-based index>_<params>`."""
    return int(experiment_tag.split("_", 1)[0]) - 1
