"""`edgekit sweep` with the local engine: a 4-trial search on the tiny preset is the same for the
same seed, rejects over-budget trials before training, resumes after a kill, and its best config
trains again to the score it was chosen for."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from edgekit.config import load_config
from edgekit.errors import ArtifactError, RunLockError
from edgekit.rundir.artifacts import write_text
from edgekit.sweep.budget import Budget, figures_of
from edgekit.sweep.results import TrialRow, best_row, pareto_front
from edgekit.sweep.run import run_sweep
from edgekit.sweep.space import load_space, parse_space

# 4-epoch phases keep each trial near a second; 2 threads as on CI
BASE = ["train.threads=2", "train.float_epochs=4", "train.qat_epochs=2"]
SPACE = {
    "model.kernel_size": {"choices": [3, 5, 7]},
    "model.downsample": {"choices": [1, 2]},
    "train.lr": {"low": 0.003, "high": 0.03, "log": True},
}


def read_trials(folder: Path) -> list[dict[str, str]]:
    with open(folder / "trials.csv", newline="") as file:
        return list(csv.DictReader(file))


def sweep_once(folder: Path, **options: object) -> dict:
    options = {"trials": 4, "seed": 3, "final": False, "echo": lambda line: None, **options}
    space = parse_space(options.pop("space", SPACE), "test space")
    base = load_config("tiny", [*BASE, *options.pop("overrides", [])])
    return run_sweep(folder, base, space, **options)


def test_same_seed_same_trials_and_best(tmp_path: Path) -> None:
    first, second = sweep_once(tmp_path / "a"), sweep_once(tmp_path / "b")
    assert first["best"] == second["best"] and first["best"] is not None
    strip = [
        {k: v for k, v in row.items() if k != "seconds"} for row in read_trials(tmp_path / "a")
    ]
    assert strip == [
        {k: v for k, v in row.items() if k != "seconds"} for row in read_trials(tmp_path / "b")
    ]
    assert len(strip) == 4 and {r["status"] for r in strip} <= {"complete", "pruned"}
    # a different seed draws other parameters
    third = sweep_once(tmp_path / "c", seed=4)
    assert [r["train.lr"] for r in read_trials(tmp_path / "c")] != [r["train.lr"] for r in strip]
    assert third["counts"]["complete"] >= 1
    # the outputs a user reads
    folder = tmp_path / "a"
    for name in ("trials.json", "best.yaml", "report.md", "front.png", "curves.png", "space.yaml"):
        assert (folder / name).is_file(), name
    report = (folder / "report.md").read_text()
    assert f"best: trial {first['best']['number']}" in report
    trials = json.loads((folder / "trials.json").read_text())
    complete = [t for t in trials if t["status"] == "complete"]
    assert all(t["curve"] and t["figures"]["macs"] > 0 for t in complete)


def test_over_budget_trials_are_rejected_before_training(tmp_path: Path) -> None:
    """With a MAC budget between the cheapest and the dearest network of the space, the dear
    ones end over budget without a trial folder (never trained) and the best one fits."""
    space = {"model.kernel_size": {"choices": [3, 9]}, "model.downsample": {"choices": [1, 2]}}
    base = load_config("tiny", BASE)
    macs = {}
    from edgekit.data.prepare import prepare_data
    from edgekit.models import Conv2dFSQNet
    from edgekit.train.loop import net_config_for

    data = prepare_data(base.data)
    for kernel in (3, 9):
        for stages in (1, 2):
            config = load_config(
                "tiny", [*BASE, f"model.kernel_size={kernel}", f"model.downsample={stages}"]
            )
            model = Conv2dFSQNet(net_config_for(config, data, quant=False))
            macs[kernel, stages] = figures_of(model, "onnx", Budget(), 13)["macs"]
    limit = sorted(macs.values())[1]  # two of the four networks fit
    summary = sweep_once(tmp_path / "s", space=space, trials=6, budget=Budget({"macs": limit}))
    rows = read_trials(tmp_path / "s")
    over = [r for r in rows if r["status"] == "over_budget"]
    assert over and all(int(r["macs"]) > limit and r["reason"].startswith("macs ") for r in over)
    assert all(not (tmp_path / "s" / "trials" / f"{int(r['number']):04d}").exists() for r in over)
    fitting = [r for r in rows if r["status"] != "over_budget"]
    assert fitting and all(int(r["macs"]) <= limit for r in fitting)
    assert int(summary["best"]["params"]["model.kernel_size"]) in (3, 9)
    assert summary["counts"]["over_budget"] == len(over)


def test_no_trial_within_budget_is_one_clear_error(tmp_path: Path) -> None:
    from edgekit.errors import ConfigError

    with pytest.raises(ConfigError, match="no trial .* completed within the budget"):
        sweep_once(tmp_path / "s", trials=2, budget=Budget({"params": 10}))
    assert (tmp_path / "s" / "trials.csv").is_file()  # what was tried is still reported


def test_best_config_trains_again_to_its_score_and_passes_parity(tmp_path: Path) -> None:
    """The final run of best.yaml (test split read once, here) reproduces the trial's validation
    score, exports and passes parity; its budget figures are measured on the export."""
    # one point: the tiny preset itself (its learning rate), whose pipeline the session's
    # fixture runs too; with the preset's epochs
    summary = sweep_once(
        tmp_path / "s",
        space={"train.lr": {"choices": [0.01]}},
        # with a val cut, so the final run has the trial's val windows to score again
        overrides=[
            "train.float_epochs=20",
            "train.qat_epochs=6",
            "data.split_fractions=[0.7, 0.15, 0.15]",
        ],
        trials=1,
        final=True,
        budget=Budget({"macs": 10**7}),
    )
    final = summary["final"]
    assert final["int8_val_accuracy"] == pytest.approx(summary["best"]["value"])
    assert final["parity_passed"] and final["device_passed"] and not final["violations"]
    assert final["figures"]["macs"] > 0
    best_yaml = tmp_path / "s" / "best.yaml"
    assert (
        load_config(best_yaml).digest()
        == load_config(
            None, [], base=load_config(tmp_path / "s" / "best" / "config.resolved.yaml")
        ).digest()
    )
    assert "## The chosen model" in (tmp_path / "s" / "report.md").read_text()


def test_a_killed_sweep_resumes_and_a_second_sweep_cannot_share_its_folder(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    args = [sys.executable, "-m", "edgekit.cli", "sweep", "--config", "tiny", "--no-final"]
    args += ["--trials", "4", "--seed", "3", "--out", str(folder)]
    for item in ["train.threads=2", "train.float_epochs=30", "train.qat_epochs=2"]:
        args += ["--set", item]
    space = tmp_path / "space.yaml"
    space.write_text(json.dumps(SPACE))
    process = subprocess.Popen([*args, "--space", str(space)], stdout=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while not (folder / "trials" / "0001" / "config.resolved.yaml").is_file():
            assert process.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        with pytest.raises(RunLockError, match="is being written by"):
            sweep_once(folder)
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    lines: list[str] = []
    base = ["train.float_epochs=30", "train.qat_epochs=2"]
    summary = sweep_once(folder, overrides=base, echo=lines.append)
    assert lines[1] == "resuming: 1 trials finished, 1 interrupted trial(s) queued again"
    rows = read_trials(folder)
    assert len(rows) == 4 and summary["best"] is not None
    assert [r["number"] for r in rows] == ["0", "2", "3", "4"]  # 1 was cut; its params ran as 2
    keys = list(SPACE)
    assert trial_params(folder / "trials" / "0001", keys) == trial_params(
        folder / "trials" / "0002", keys
    )


def trial_params(trial_folder: Path, keys: list[str]) -> list[object]:
    """The searched keys' values in a trial's resolved config."""
    import yaml

    config = yaml.safe_load((trial_folder / "config.resolved.yaml").read_text())
    return [config[k.split(".")[0]][k.split(".")[1]] for k in keys]


def test_pareto_front_and_best_row() -> None:
    def row(number: int, value: float | None, macs: int, status: str = "complete") -> TrialRow:
        return TrialRow(number, status, value, {}, {"macs": macs})

    rows = [
        row(0, 0.8, 100),
        row(1, 0.9, 300),
        row(2, 0.7, 200),
        row(3, 0.9, 250),
        row(4, None, 1, "pruned"),
    ]
    assert [r.number for r in pareto_front(rows, "macs")] == [0, 3]
    best = best_row(rows)
    assert best is not None and best.number == 3  # ties on score go to fewer MACs


def test_the_default_space_is_valid_and_names_the_ablation_levers() -> None:
    space = load_space(None)
    assert {"model.size", "augment.jitter", "model.fsq_levels"} <= set(space.keys)
    config = space.config_for(
        load_config(), {"model.fsq_levels": "[8, 6, 5]", "model.size": "tiny"}
    )
    assert config.model.fsq_levels == (8, 6, 5) and config.model.size == "tiny"
    assert os.path.basename(space.source.split()[-1]) == "sweep_space.yaml"


def test_two_local_workers_share_one_journal(tmp_path: Path) -> None:
    """Two worker processes on the study's journal: the trials are split between them, each
    runs, and the table holds them all."""
    summary = sweep_once(tmp_path / "s", trials=3, workers=2)
    rows = read_trials(tmp_path / "s")
    assert sorted(int(r["number"]) for r in rows) == [0, 1, 2]
    assert sum(summary["counts"].values()) == 3 and summary["best"] is not None


def test_a_network_the_windows_cannot_carry_is_recorded_invalid(tmp_path: Path) -> None:
    from edgekit.errors import ConfigError

    space = {"model.kernel_size": {"choices": [33]}}  # longer than the tiny preset's 32-step rows
    with pytest.raises(ConfigError, match="no trial"):
        sweep_once(tmp_path / "s", space=space, trials=1)
    (row,) = read_trials(tmp_path / "s")
    assert row["status"] == "invalid" and "too short" in row["reason"]


def test_a_relative_data_path_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit.sweep.run import absolute_source

    (tmp_path / "ts").mkdir()
    monkeypatch.chdir(tmp_path)
    config = absolute_source(load_config(None, ["data.source=ts:ts"]))
    assert config.data.source == f"ts:{tmp_path / 'ts'}"
    bundled = load_config(None, [])
    assert absolute_source(bundled) == bundled


def test_ray_without_the_extra_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from edgekit.errors import ConfigError

    monkeypatch.setitem(sys.modules, "ray", None)  # as if the extra were not installed
    with pytest.raises(ConfigError, match=r"needs Ray, which is not installed; install the extra"):
        sweep_once(tmp_path / "s", trials=1, ray="local")


def test_hailo_target_records_the_readiness_verdict_of_each_trial(tmp_path: Path) -> None:
    sweep_once(tmp_path / "s", trials=1, target="hailo")
    (trial,) = json.loads((tmp_path / "s" / "trials.json").read_text())
    assert trial["figures"]["hailo_ready"] is True and trial["status"] == "complete"


def test_a_base_without_a_val_split_is_searched_on_a_val_cut_and_trained_without_one(
    tmp_path: Path,
) -> None:
    """Trials need val windows to be scored: a base config without a val split searches with a
    cut of its train share, and the final run trains the chosen config on every window as the base
    asks. A trial whose own config drops the val split is recorded invalid."""
    from edgekit.errors import ConfigError
    from edgekit.sweep.run import with_search_val_cut

    base = load_config("tiny", [*BASE, "data.split_fractions=[0.85, 0, 0.15]"])
    assert with_search_val_cut(base).data.split_fractions == pytest.approx((0.7, 0.15, 0.15))
    summary = sweep_once(
        tmp_path / "s", overrides=["data.split_fractions=[0.85, 0, 0.15]"], trials=1, final=True
    )
    assert 0 < summary["best"]["value"] <= 1  # scored on the search's val cut
    final = json.loads((tmp_path / "s/best/metrics.json").read_text())
    assert final["splits"]["val"] == 0 and final["int8_val_accuracy"] is None
    assert "validation – (trained on every train window" in (tmp_path / "s/report.md").read_text()
    space = {"data.split_fractions": {"choices": [[0.85, 0.0, 0.15]]}}
    with pytest.raises(ConfigError, match="no trial"):
        sweep_once(tmp_path / "trial", space=space, trials=1)
    (row,) = read_trials(tmp_path / "trial")
    assert row["status"] == "invalid" and "val share of 0" in row["reason"]


@pytest.mark.parametrize(
    ("content", "problem"),
    [("{broken", "not readable JSON"), ("", "not readable JSON"), ("[1, 2]", "a JSON list")],
)
def test_a_damaged_sweep_folder_is_one_clear_error(
    tmp_path: Path, content: str, problem: str
) -> None:
    """Resuming reads the settings, the journal and the final run's summary: each damaged one is
    named with the fix, before a trial runs."""
    from edgekit.sweep.local import open_study
    from edgekit.sweep.run import final_run

    (tmp_path / "sweep.json").write_text(content)
    with pytest.raises(ArtifactError, match=rf"sweep.json .*{problem}.*remove {tmp_path} to start"):
        sweep_once(tmp_path)
    (tmp_path / "study.journal").write_text(content or "\n\n")
    with pytest.raises(ArtifactError, match=r"study.journal is damaged .*remove .* to start over"):
        open_study(tmp_path, 0, 1)

    config = load_config("tiny", BASE)
    write_text(tmp_path / "best" / "config.resolved.yaml", config.to_yaml())
    (tmp_path / "best" / "summary.json").write_text(content)
    best = TrialRow(number=3, status="complete", value=0.9, params={})
    with pytest.raises(ArtifactError, match=rf"summary.json .*{problem}.*remove .*best to train"):
        final_run(tmp_path, config, best, "onnx", Budget(), lambda line: None)
