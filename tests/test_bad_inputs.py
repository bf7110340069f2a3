"""Bad and hostile inputs across every command, as a table.

Each case runs the console entry point in-process and asserts: the exit code, exactly one line on
stderr (the error) with no traceback, and, where the case targets an existing run, the sha256 of
every file in it unchanged (verify's partial report is the one declared exception).
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from edgekit.cli import main
from edgekit.rundir.artifacts import Manifest

Prepare = Callable[[Path, Path, pytest.MonkeyPatch], None]


@dataclass(frozen=True)
class Case:
    id: str
    category: str
    args: tuple[str, ...]  # {run}: a private copy of an exported run; {tmp}: an empty folder
    message: str  # part of the one error line
    code: int = 2
    prepare: Prepare | None = None  # damage or set-up before the command runs
    may_write: tuple[str, ...] = ()  # run paths the command may change (a partial verify report)


# ------------------------------------------------------------------ preparations
def write(name: str, content: bytes | str) -> Prepare:
    def prepare(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content.encode() if isinstance(content, str) else content)

    return prepare


def npy_folder(
    X: np.ndarray, y: np.ndarray, files: dict[str, str] | None = None, x_bytes: int = 0
) -> Prepare:
    """X.npy and y.npy, then `files` written over or beside them; X.npy cut to `x_bytes` if set."""

    def prepare(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
        (tmp / "npy").mkdir()
        np.save(tmp / "npy" / "X.npy", X)
        np.save(tmp / "npy" / "y.npy", y)
        for name, text in (files or {}).items():
            (tmp / "npy" / name).write_text(text)
        if x_bytes:
            (tmp / "npy" / "X.npy").write_bytes((tmp / "npy" / "X.npy").read_bytes()[:x_bytes])

    return prepare


def uci(
    rows: dict[str, int] | None = None,
    labels: str = "1 WALKING\n2 SITTING\n",
    y: tuple[int, ...] = (1, 2, 1, 2),
) -> Prepare:
    """A UCI-HAR layout with a window per label of `y`; `rows` gives some files another row count
    (every file is empty for `y=()`)."""

    def prepare(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
        root = tmp / "uci"
        (root / "train" / "Inertial Signals").mkdir(parents=True)
        (root / "activity_labels.txt").write_text(labels)
        rng = np.random.default_rng(0)
        for kind in ("body_acc", "body_gyro", "total_acc"):
            for axis in "xyz":
                name = f"{kind}_{axis}_train.txt"
                n = (rows or {}).get(name, len(y))
                np.savetxt(root / "train" / "Inertial Signals" / name, rng.normal(size=(n, 128)))
        np.savetxt(root / "train" / "y_train.txt", y, fmt="%d")
        np.savetxt(root / "train" / "subject_train.txt", [1, 1, 2, 2][: len(y)], fmt="%d")

    return prepare


def inputs(make: Callable[[tuple[int, ...]], dict[str, np.ndarray]]) -> Prepare:
    """An .npz built from the run's model input shape (C, 2, T/2)."""

    def prepare(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
        shape = np.load(run / "data" / "X_test.npy", mmap_mode="r").shape[1:]
        np.savez(tmp / "in.npz", **make(shape))

    return prepare


def zeros(n: int, shape: tuple[int, ...]) -> np.ndarray:
    return np.zeros((n, *shape), np.float32)


def damage(relative: str, how: str, record: bool = False) -> Prepare:
    """Truncate, empty, delete or overwrite a run file; `record` enters it in the manifest as a
    stage would (so the check after the manifest is what must catch it)."""

    def prepare(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
        path = run / relative
        if how == "delete":
            path.unlink()
        elif how == "truncate":
            path.write_bytes(path.read_bytes()[: max(1, path.stat().st_size // 3)])
        elif how.startswith("copy:"):
            shutil.copyfile(run / how[5:], path)
        else:
            path.write_text(how)
        if record:
            manifest = Manifest(run)
            manifest.record(path)
            manifest.save()

    return prepare


def refuse_writes(code: int) -> Prepare:
    """The file system refuses every new file (disk full, read-only)."""

    def prepare(run: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        real_replace = os.replace

        def full(source: str | Path, target: str | Path) -> None:
            if Path(target).name.endswith((".json", ".npz", ".npy", ".pt", ".onnx")):
                raise OSError(code, os.strerror(code), str(target))
            real_replace(source, target)

        monkeypatch.setattr(os, "replace", full)

    return prepare


def interrupt(signal_name: str | None) -> Prepare:
    """Ctrl-C (or SIGTERM) in the middle of training, after the first validation."""

    def prepare(run: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        import signal

        from edgekit.train.loop import Trainer

        original = Trainer.validate

        def validate(self, model):  # type: ignore[no-untyped-def]
            result = original(self, model)
            if signal_name is None:
                raise KeyboardInterrupt
            os.kill(os.getpid(), getattr(signal, signal_name))
            return result

        monkeypatch.setattr(Trainer, "validate", validate)

    return prepare


def lock_held(run: Path, tmp: Path, _: pytest.MonkeyPatch) -> None:
    import socket

    holder = {
        "pid": os.getppid(),
        "host": socket.gethostname(),
        "command": "pipeline",
        "started": 0,
    }
    (run / ".edgekit.lock").write_text(json.dumps(holder))


def both(*steps: Prepare) -> Prepare:
    def prepare(run: Path, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> None:
        for step in steps:
            step(run, tmp, monkeypatch)

    return prepare


TRAIN = ("train", "--config", "tiny", "--out", "{tmp}/new")
INSPECT = ("data", "inspect", "--data")
VERIFY = ("verify", "{run}", "--device")
SWEEP = ("sweep", "--config", "tiny", "--out", "{tmp}/sweep", "--no-final", "--trials", "1")
SPACE = (*SWEEP, "--space", "{tmp}/space.yaml")


def space_case(name: str, space: str, message: str) -> Case:
    """A sweep whose space file holds `space`."""
    return Case(name, "config", SPACE, message, prepare=write("space.yaml", space))


NOT_UTF8 = b"\xff\xfe\x00bad"

CASES = [
    # ---------------------------------------------------------------- data
    Case("ts-not-utf8", "data", (*INSPECT, "ts:{tmp}/ts"), "not UTF-8", prepare=write("ts/x_TRAIN.ts", NOT_UTF8)),
    Case("csv-not-utf8", "data", (*INSPECT, "csv:{tmp}/a.csv"), "not UTF-8", prepare=write("a.csv", NOT_UTF8)),
    Case("csv-folder", "data", (*INSPECT, "csv:{tmp}"), "is a folder"),
    Case("csv-no-channels", "data", (*INSPECT, "csv:{tmp}/a.csv"), "no channel columns",
         prepare=write("a.csv", "group,label\ns1,a\ns1,b\n")),
    Case("csv-no-label", "data", (*INSPECT, "csv:{tmp}/a.csv"), "column 'label' not in",
         prepare=write("a.csv", "group,x\ns1,1\n")),
    Case("csv-text-value", "data", (*INSPECT, "csv:{tmp}/a.csv"),
         "line 3 of a.csv, column 'x': 'one' is not a number",
         prepare=write("a.csv", "group,label,x\ns1,a,1\ns1,a,one\n")),
    Case("csv-decimal-comma", "data", (*INSPECT, "csv:{tmp}/a.csv"), "'.' as the decimal mark",
         prepare=write("a.csv", "group;label;x\ns1;a;1,5\n")),
    Case("csv-decimal-comma-split", "data", (*INSPECT, "csv:{tmp}/a.csv"),
         "line 2 of a.csv has 4 fields, the header 3 (','-separated)",
         prepare=write("a.csv", "group,label,x\ns1,a,1,5\n")),
    Case("csv-short-row", "data", (*INSPECT, "csv:{tmp}/a.csv"), "line 3 of a.csv has 2 fields",
         prepare=write("a.csv", "group,label,x\ns1,a,1\ns1,a\n")),
    Case("csv-unlabelled-row", "data", (*INSPECT, "csv:{tmp}/a.csv"), "line 2 of a.csv has no 'label'",
         prepare=write("a.csv", "group,label,x\ns1,,1\n")),
    Case("csv-empty", "data", (*INSPECT, "csv:{tmp}/a.csv"), "is empty", prepare=write("a.csv", "")),
    Case("csv-too-short", "data", (*INSPECT, "csv:{tmp}/a.csv"), "no window of",
         prepare=write("a.csv", "group,label,x\ns1,a,1\ns1,a,2\n")),
    Case("csv-missing", "data", (*INSPECT, "csv:{tmp}/none.csv"), "does not exist"),
    Case("npy-no-x", "data", (*INSPECT, "npy:{tmp}"), "X.npy is missing"),
    Case("npy-2d", "data", (*INSPECT, "npy:{tmp}/npy"), "must be (N, C, T)",
         prepare=npy_folder(np.zeros((4, 10), np.float32), np.zeros(4, np.int64))),
    Case("npy-label-count", "data", (*INSPECT, "npy:{tmp}/npy"), "4 windows but 3 labels",
         prepare=npy_folder(np.zeros((4, 2, 10), np.float32), np.zeros(3, np.int64))),
    Case("npy-all-nan", "data", (*INSPECT, "npy:{tmp}/npy"), "every value is NaN/Inf",
         prepare=npy_folder(np.full((8, 2, 10), np.nan, np.float32), np.arange(8) % 2)),
    Case("npy-no-channels", "data", (*INSPECT, "npy:{tmp}/npy"), "the windows have no channels",
         prepare=npy_folder(np.zeros((4, 0, 10), np.float32), np.arange(4) % 2)),
    Case("npy-not-npy", "data", (*INSPECT, "npy:{tmp}/npy"), "X.npy is not a NumPy .npy file",
         prepare=npy_folder(np.zeros((4, 1, 10)), np.arange(4), files={"X.npy": "1,2,3\n"})),
    Case("npy-object-array", "data", (*INSPECT, "npy:{tmp}/npy"), "y.npy can't be read as a plain",
         prepare=npy_folder(np.zeros((2, 1, 10), np.float32), np.array(["a", 1], dtype=object))),
    Case("npy-truncated", "data", (*INSPECT, "npy:{tmp}/npy"), "X.npy can't be read as a plain",
         prepare=npy_folder(np.zeros((40, 3, 64), np.float32), np.arange(40) % 2, x_bytes=1000)),
    Case("npy-fraction-labels", "data", (*INSPECT, "npy:{tmp}/npy"), "1-D integer or string labels",
         prepare=npy_folder(np.zeros((2, 1, 10), np.float32), np.array([0.5, 1.0]))),
    Case("npy-classes-txt-short", "data", (*INSPECT, "npy:{tmp}/npy"),
         "labels 0..3 but classes.txt names 2 classes",
         prepare=npy_folder(np.zeros((4, 1, 10)), np.arange(4), files={"classes.txt": "a\nb\n"})),
    Case("pamap2-empty-file", "data", (*INSPECT, "pamap2:{tmp}"), "subject101.dat holds no rows",
         prepare=write("subject101.dat", "")),
    Case("uci-no-labels-file", "data", (*INSPECT, "uci-har:{tmp}"), "activity_labels.txt is missing"),
    Case("uci-unequal-rows", "data", (*INSPECT, "uci-har:{tmp}/uci"), "disagree in rows",
         prepare=uci({"body_gyro_y_train.txt": 3})),
    Case("uci-empty-files", "data", (*INSPECT, "uci-har:{tmp}/uci"), "the data set is empty",
         prepare=uci(y=())),
    Case("uci-bad-labels-file", "data", (*INSPECT, "uci-har:{tmp}/uci"), "not 'ID NAME' lines",
         prepare=uci(labels="WALKING\n")),
    Case("uci-unknown-label", "data", (*INSPECT, "uci-har:{tmp}/uci"), "not in activity_labels.txt",
         prepare=uci(y=(1, 2, 1, 7))),
    Case("pamap2-missing", "data", (*INSPECT, "pamap2:{tmp}/none"), "does not exist"),
    Case("unknown-scheme", "data", (*INSPECT, "hdf5:{tmp}/x.h5"), "unknown data source 'hdf5'"),
    Case("unknown-bundled", "data", (*INSPECT, "bundled:nope"), "nope"),
    Case("train-on-bad-data", "data", (*TRAIN, "--data", "csv:{tmp}/a.csv"), "no channel columns",
         prepare=write("a.csv", "group,label\ns1,a\n")),
    # ---------------------------------------------------------------- config
    *(
        Case(f"set-{key}={value}", "config", (*TRAIN, "--set", f"{key}={value}"), key)
        for key, value in [
            ("data.window_stride", "0"), ("model.kernel_size", "-1"),
            ("model.kernel_size", "999"), ("train.lr", "nan"), ("train.lr", "-1"), ("train.lr", "inf"),
            ("train.label_smoothing", "2"), ("train.threads", "-4"), ("train.qat_epochs", "0"),
            ("train.float_epochs", "-1"), ("model.fsq_levels", "[1000,1000,1000]"),
            ("train.batch_size", "abc"), ("data.split_fractions", "[0.5,0.6,0.1]"),
        ]
    ),
    # a Hailo name with a typo is refused before training, not at the pipeline's export stage
    Case("pipeline-hw-arch-typo", "config",
         ("pipeline", "--config", "tiny", "--out", "{tmp}/new", "--set", "export.hw_arch=hailo8L"),
         "export.hw_arch: 'hailo8L' is not one of hailo8, hailo8l, hailo10h"),
    Case("set-unknown-key", "config", (*TRAIN, "--set", "train.nope=1"), "train.nope"),
    Case("set-unknown-section", "config", (*TRAIN, "--set", "bogus.x=1"), "bogus"),
    Case("set-no-equals", "config", (*TRAIN, "--set", "train.lr"), "train.lr"),
    Case("config-missing", "config", ("train", "--config", "{tmp}/no.yaml", "--out", "{tmp}/new"), "not found"),
    Case("config-not-utf8", "config", ("train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/new"), "not UTF-8",
         prepare=write("c.yaml", NOT_UTF8)),
    Case("config-bad-yaml", "config", ("train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/new"), "not valid YAML",
         prepare=write("c.yaml", "train: [1,\n")),
    Case("config-a-list", "config", ("train", "--config", "{tmp}/c.yaml", "--out", "{tmp}/new"), "mapping",
         prepare=write("c.yaml", "- 1\n- 2\n")),
    # a sweep's space file and budget: refused before any trial, and before the folder is made
    space_case("space-unknown-key", "model.sise: {choices: [tiny, small]}\n", "did you mean 'size'"),
    space_case("space-bad-choice", "model.kernel_size: {choices: [3, -1]}\n", "model.kernel_size"),
    space_case("space-bad-type", "model.kernel_size: {low: 2.5, high: 7.5}\n",
               "model.kernel_size: expected an integer"),
    space_case("space-no-high", "train.lr: {low: 0.001}\n", "a range needs low and high"),
    space_case("space-log-from-0", "train.lr: {low: 0, high: 0.01, log: true}\n", "low > 0 with log"),
    space_case("space-both-kinds", "train.lr: {choices: [0.1], low: 0.01}\n", "either choices"),
    space_case("space-not-dotted", "lr: {low: 0.001, high: 0.01}\n", "keys are section.key"),
    space_case("space-a-list", "- 1\n- 2\n", "mapping"),
    Case("space-missing", "config", (*SWEEP, "--space", "{tmp}/none.yaml"), "not found"),
    Case("budget-unknown", "config", (*SWEEP, "--target", "mcu", "--budget", "flsh=64k"),
         "did you mean 'flash'"),
    Case("budget-not-the-target", "config", (*SWEEP, "--target", "onnx", "--budget", "ram=20k"),
         "only the mcu target"),
    Case("budget-latency-no-clock", "config", (*SWEEP, "--target", "mcu", "--budget", "latency_ms=5"),
         "cpu_mhz"),
    Case("budget-not-a-number", "config", (*SWEEP, "--target", "mcu", "--budget", "ram=lots"),
         "expected a number"),
    Case("budget-negative", "config", (*SWEEP, "--budget", "macs=-2M"), "expected a number"),
    Case("budget-no-equals", "config", (*SWEEP, "--budget", "macs"), "KEY=VALUE"),
    Case("limit-negative", "config", (*VERIFY, "emu://", "--limit", "-3"), "-3"),
    Case("reference-samples-0", "config", ("export", "{run}", "--target", "onnx", "--reference-samples", "0"), "0"),
    Case("min-agreement-above-1", "config", (*VERIFY, "emu://", "--min-agreement", "2"), "2"),
    Case("unknown-target", "config", ("export", "{run}", "--target", "tflite"), "unknown target 'tflite'"),
    # ---------------------------------------------------------------- output paths and storage
    Case("out-under-proc", "output", ("train", "--config", "tiny", "--out", "/proc/edgekit-run"), "cannot create"),
    Case("out-is-a-file", "output", ("train", "--config", "tiny", "--out", "{tmp}/f"), "cannot create",
         prepare=write("f", "x")),
    Case("out-not-a-run", "output", ("train", "--config", "tiny", "--out", "{tmp}/mine"), "not an edgekit run",
         prepare=write("mine/notes.txt", "mine")),
    Case("evaluate-checkpoint-outside", "output", ("evaluate", "{run}", "--checkpoint", "../best.pt"),
         "file name inside"),
    Case("disk-full-calibrate", "output", ("calibrate", "{run}"), "No space left", code=8,
         prepare=refuse_writes(errno.ENOSPC)),
    Case("read-only-export", "output", ("export", "{run}", "--target", "onnx"), "Read-only", code=8,
         prepare=refuse_writes(errno.EROFS)),
    # ---------------------------------------------------------------- resume and retraining
    Case("resume-changes-shape", "resume", ("train", "--out", "{run}", "--resume", "--set", "model.channels=[4,4,4]"),
         "model.channels would change"),
    Case("resume-changes-data", "resume", ("train", "--out", "{run}", "--resume", "--data", "synthetic:"),
         "data.source would change"),
    Case("resume-without-last", "resume", ("train", "--out", "{run}", "--resume"), "no ",
         prepare=damage("checkpoints/last.pt", "delete")),
    Case("resume-truncated-last", "resume", ("train", "--out", "{run}", "--resume"), "last.pt does not match",
         prepare=damage("checkpoints/last.pt", "truncate")),
    Case("resume-edited-config", "resume", ("train", "--out", "{run}", "--resume"),
         "config.resolved.yaml does not match",
         prepare=damage("config.resolved.yaml", "data: {}\n")),
    Case("retrain-diverges", "resume", ("train", "--config", "tiny", "--out", "{run}", "--set", "train.lr=1e30",
                                        "--set", "train.grad_clip=0"), "training diverged", code=3),
    Case("retrain-ctrl-c", "resume", ("train", "--config", "tiny", "--out", "{run}"), "rolled back", code=130,
         prepare=interrupt(None)),
    Case("retrain-sigterm", "resume", ("train", "--config", "tiny", "--out", "{run}"), "SIGTERM", code=143,
         prepare=interrupt("SIGTERM")),
    # ---------------------------------------------------------------- stage order and concurrency
    Case("calibrate-no-run", "stage order", ("calibrate", "{tmp}/none"), "does not exist"),
    Case("export-no-run", "stage order", ("export", "{tmp}/none", "--target", "onnx"), "does not exist"),
    Case("parity-no-run", "stage order", ("parity", "{tmp}/none"), "does not exist"),
    Case("evaluate-no-run", "stage order", ("evaluate", "{tmp}/none"), "does not exist"),
    Case("export-before-train", "stage order", ("export", "{run}", "--target", "onnx"), "best.pt is missing",
         prepare=damage("checkpoints/best.pt", "delete")),
    Case("parity-before-export", "stage order", ("parity", "{run}"), "has no exports",
         prepare=lambda run, tmp, _: shutil.rmtree(run / "export")),
    Case("verify-before-export", "stage order", (*VERIFY, "emu://"), "--target onnx", code=5,
         prepare=lambda run, tmp, _: shutil.rmtree(run / "export")),
    Case("export-not-a-run", "stage order", ("export", "{tmp}", "--target", "onnx"), "not an edgekit run",
         prepare=write("notes.txt", "mine")),
    Case("second-writer", "stage order", ("calibrate", "{run}"), "is being written by", code=7, prepare=lock_held),
    # ---------------------------------------------------------------- damaged artifacts
    Case("int8-onnx-truncated", "artifacts", ("parity", "{run}"), "model_int8.onnx does not match",
         prepare=damage("export/onnx/model_int8.onnx", "truncate")),
    Case("reference-io-corrupted", "artifacts", ("parity", "{run}"), "reference_io.npz does not match",
         prepare=damage("export/onnx/reference_io.npz", "garbage")),
    Case("hailo-file-added", "artifacts", ("parity", "{run}"), "not recorded in manifest.json",
         prepare=lambda run, tmp, _: (run / "export/hailo/hailo8/extra.onnx").write_text("x")),
    Case("float-model-as-int8", "artifacts", (*VERIFY, "emu://"), "float model, not the int8",
         prepare=damage("export/onnx/model_int8.onnx", "copy:export/onnx/model_float.onnx", record=True)),
    Case("float-model-as-int8-parity", "artifacts", ("parity", "{run}"), "float model, not the int8",
         prepare=damage("export/onnx/model_int8.onnx", "copy:export/onnx/model_float.onnx", record=True)),
    Case("best-truncated", "artifacts", ("export", "{run}", "--target", "onnx"), "best.pt does not match",
         prepare=damage("checkpoints/best.pt", "truncate")),
    Case("best-truncated-recorded", "artifacts", ("export", "{run}", "--target", "onnx"), "best.pt",
         prepare=damage("checkpoints/best.pt", "truncate", record=True)),
    Case("float-pt-deleted", "artifacts", ("calibrate", "{run}"), "float.pt is missing",
         prepare=damage("checkpoints/float.pt", "delete")),
    Case("manifest-deleted", "artifacts", ("export", "{run}", "--target", "onnx"), "manifest.json is missing",
         prepare=damage("manifest.json", "delete")),
    Case("manifest-not-json", "artifacts", ("calibrate", "{run}"), "not readable JSON",
         prepare=damage("manifest.json", "{oops")),
    Case("config-deleted", "artifacts", ("export", "{run}", "--target", "onnx"), "not an edgekit run",
         prepare=damage("config.resolved.yaml", "delete")),
    Case("stats-other-schema", "artifacts", ("calibrate", "{run}"), "schema_version 99",
         prepare=damage("data/stats.json", '{"schema_version": 99}', record=True)),
    Case("calibration-report-other-schema", "artifacts", ("export", "{run}", "--target", "onnx"), "schema_version None",
         prepare=damage("calibration/report.json", '{"adopted": true}', record=True)),
    Case("train-array-deleted", "artifacts", ("calibrate", "{run}"), "X_train.npy is missing",
         prepare=damage("data/X_train.npy", "delete")),
    Case("calib-set-edited", "artifacts", ("export", "{run}", "--target", "hailo"), "calib_set.npz does not match",
         prepare=damage("calibration/calib_set.npz", "garbage")),
    # ---------------------------------------------------------------- verify --inputs
    Case("inputs-missing", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/none.npz"), "does not exist"),
    Case("inputs-not-npz", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "not an .npz",
         prepare=write("in.npz", "hello")),
    Case("inputs-one-array-file", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npy"), "not an .npz",
         prepare=lambda run, tmp, _: np.save(tmp / "in.npy", np.zeros((3, 6, 2, 32)))),
    Case("inputs-no-array", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "no 'inputs' array",
         prepare=inputs(lambda s: {"x": zeros(3, s)})),
    Case("inputs-wrong-shape", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "this model takes",
         prepare=inputs(lambda s: {"inputs": zeros(3, (s[0] + 1, *s[1:]))})),
    Case("inputs-empty", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "N >= 1",
         prepare=inputs(lambda s: {"inputs": zeros(0, s)})),
    Case("inputs-text", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "this model takes",
         prepare=inputs(lambda s: {"inputs": np.full((3, *s), "a")})),
    Case("inputs-all-nan", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "NaN/Inf in 3 of 3",
         prepare=inputs(lambda s: {"inputs": zeros(3, s) * np.nan})),
    Case("inputs-label-count", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "'labels' must be 3",
         prepare=inputs(lambda s: {"inputs": zeros(3, s), "labels": np.zeros(2, np.int64)})),
    Case("inputs-label-range", "verify --inputs", (*VERIFY, "emu://", "--inputs", "{tmp}/in.npz"), "'labels' must be 3",
         prepare=inputs(lambda s: {"inputs": zeros(3, s), "labels": np.array([0, 1, 99])})),
    # ---------------------------------------------------------------- device frames and links
    *(
        Case(f"device-{kind}", "device frames", (*VERIFY, f"emu://?faults=malformed={kind}"), message, code=5,
             may_write=("verify", "manifest.json"))
        for kind, message in [
            ("unknown_error", "unknown error code 200"), ("short_result", "malformed RESULT frame"),
            ("wrong_sample", "malformed RESULT frame"), ("long_result", "RESULT of"),
        ]
    ),
    Case("device-missing", "device frames", (*VERIFY, "/dev/ttyEDGEKIT9"), "does not exist", code=5,
         may_write=("verify", "manifest.json")),
    Case("device-unknown-fault", "device frames", (*VERIFY, "emu://?faults=lightning=1"), "unknown fault", code=5,
         may_write=("verify", "manifest.json")),
    Case("device-wrong-model", "device frames", (*VERIFY, "emu://?faults=wrong_hash=1"), "flash the model", code=5,
         may_write=("verify", "manifest.json")),
]  # fmt: skip


def test_the_table_covers_every_category_with_60_cases() -> None:
    counts = Counter(case.category for case in CASES)
    assert len(CASES) >= 60 and len({case.id for case in CASES}) == len(CASES)
    assert set(counts) == {
        "data", "config", "output", "resume", "stage order", "artifacts", "verify --inputs", "device frames",
    }  # fmt: skip


PROGRESS = re.compile(r"^\s*\w+ \[[#.]{20}\] \d+/\d+ ")


def run_main(args: list[str], monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.setattr(sys, "argv", ["edgekit", *args])
    try:
        main()
    except SystemExit as done:
        return int(done.code or 0)
    return 0


def files_of(folder: Path, skip: tuple[str, ...] = ()) -> dict[str, str]:
    from edgekit.rundir.artifacts import sha256_file

    if not folder.exists():
        return {}
    return {
        str(p.relative_to(folder)): sha256_file(p)
        for p in sorted(folder.rglob("*"))
        if p.is_file() and not str(p.relative_to(folder)).startswith(skip)
    }


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_input(
    case: Case,
    request: pytest.FixtureRequest,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys,
) -> None:
    run, tmp = tmp_path / "run", tmp_path / "tmp"
    if any("{run}" in arg for arg in case.args):  # the trained run is built only for cases using it
        shutil.copytree(request.getfixturevalue("exported_run"), run)
    tmp.mkdir()
    if case.prepare is not None:
        case.prepare(run, tmp, monkeypatch)
    before = files_of(run, case.may_write)
    capsys.readouterr()
    code = run_main([a.format(run=run, tmp=tmp) for a in case.args], monkeypatch)
    monkeypatch.undo()
    err = capsys.readouterr().err
    # besides the error, stderr may carry only training progress ("float [....] 0/20 ...")
    lines = [line for line in err.splitlines() if line.strip() and not PROGRESS.match(line)]
    assert code == case.code, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert case.message in lines[0], lines[0]
    assert files_of(run, case.may_write) == before  # the run is byte-identical
    assert files_of(tmp / "new") == {}  # a refused training leaves no half-written run
    if case.may_write:
        report = json.loads((run / "verify" / "report.json").read_text())
        assert report["partial"] and "partial report" in lines[0]
