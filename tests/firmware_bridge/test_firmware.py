"""The generated C firmware: the same wire device on a POSIX pty and on the emulated Cortex-M4.

Both pass the conformance suite and verify bit for bit against the integer reference; the QEMU
device reports instruction counts. QEMU tests need the Arm toolchain (CI has it).
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import toolchain
from edgekit.firmware_bridge.conformance import CHECKS, run_conformance
from edgekit.verify import QEMU_GATES, VerifyOptions, run_verify


@pytest.fixture
def posix_device(exported_run: Path) -> Iterator[str]:
    """The exported firmware built for the host, serving a pty (`build/edgekit_device_posix`)."""
    process = subprocess.Popen([str(exported_run / "export/mcu/build/edgekit_device_posix")],
                               stdout=subprocess.PIPE, text=True)  # fmt: skip
    assert process.stdout is not None
    line = process.stdout.readline()
    assert line.startswith("edgekit device on /dev/pts/"), line
    yield line.split()[-1]
    process.terminate()
    process.wait(timeout=5)


def test_the_c_firmware_passes_every_conformance_check(posix_device: str) -> None:
    outcomes = run_conformance(posix_device, timeout=1.0)
    assert [o.name for o in outcomes] == [name for name, _ in CHECKS]
    assert all(o.passed for o in outcomes), [(o.name, o.detail) for o in outcomes if not o.passed]


def test_the_c_firmware_verifies_bit_exact(run_copy: Path, posix_device: str) -> None:
    report = run_verify(
        run_copy, VerifyOptions(device=posix_device, show_progress=False, **QEMU_GATES)
    )
    assert report["passed"], report.get("error")
    assert report["device"]["runtime"].startswith("edgekit-c")
    assert (
        report["reference"] == "integer-reference"
    )  # an independent implementation of the same integers
    assert report["rows"]["device_vs_reference"]["max_lsb"] == 0
    assert report["samples_done"] == report["samples_total"]


@pytest.mark.mcu_tools
def test_verify_on_the_emulated_cortex_m4_is_exact_and_counts_instructions(run_copy: Path) -> None:
    counts = []
    for build in ("dsp", "portable"):
        report = run_verify(run_copy, VerifyOptions(device=f"qemu://?build={build}", show_progress=False, limit=8,
                                                        **QEMU_GATES))  # fmt: skip
        assert report["passed"], report.get("error")
        assert report["device"]["board"] == "mps2-an386"
        assert report["device"]["runtime"] == f"edgekit-c {build}"
        counts.append(report["device"]["instructions_per_inference_median"])
        assert "instructions per inference" in (run_copy / "verify/report.md").read_text()
    assert 0 < counts[0] < counts[1]  # the DSP kernels need fewer instructions
    again = run_verify(
        run_copy, VerifyOptions(device="qemu://", show_progress=False, limit=8, **QEMU_GATES)
    )
    # -icount makes the model's instructions deterministic (the self-test's count repeats exactly,
    # test_mcu), but verify's count also holds the receive interrupts of the next window's bytes
    # arriving during the inference, and how many arrive depends on the host's timing: a few
    # SysTick ticks (40 instructions each) either way were seen on a loaded 2-core machine: 1 %
    assert abs(again["device"]["instructions_per_inference_median"] - counts[0]) <= 0.01 * counts[0]


@pytest.mark.mcu_tools
def test_the_firmware_in_qemu_passes_every_conformance_check(exported_run: Path) -> None:
    outcomes = run_conformance(f"qemu://?run={exported_run}", timeout=1.0)
    assert all(o.passed for o in outcomes), [(o.name, o.detail) for o in outcomes if not o.passed]


@pytest.mark.mcu_tools
def test_device_qemu_prints_its_pty_and_stops_on_ctrl_c(exported_run: Path) -> None:
    process = subprocess.Popen(["edgekit", "device", "qemu", "--run", str(exported_run)], stdout=subprocess.PIPE,
                               text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        assert "mps2-an386 running edgekit_device_mps2.elf on /dev/pts/" in line, line
        pty = line.split(" on ")[1].split()[0]
        outcomes = run_conformance(pty, timeout=1.0)
        assert outcomes[0].passed, outcomes[0].detail
    finally:
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    assert "stopped" in process.stdout.read()


def test_qemu_urls_and_a_qemu_that_does_not_start_are_one_line(run_copy: Path, tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    result = CliRunner().invoke(
        cli, ["verify", str(run_copy), "--device", "qemu://lm3s6965evb", "--limit", "2"]
    )
    assert isinstance(result.exception, DeviceError) and "\n" not in str(result.exception)
    assert "qemu://lm3s6965evb: unknown board; supported: mps2-an386" in str(result.exception)
    monkeypatch.setattr(
        toolchain,
        "qemu_command",
        lambda elf, board, serial: ["sh", "-c", "echo qemu: broken; exit 3"],
    )
    monkeypatch.setattr(toolchain, "missing_tools", lambda names: [])
    with pytest.raises(DeviceError, match=r"did not start or printed no pty .*exit code 3"):
        toolchain.boot_qemu(tmp_path / "fw.elf", "mps2-an386", DeviceError, timeout=5)


def test_qemu_needs_an_mcu_export_and_the_cross_compiler(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    for elf in (run_copy / "export/mcu/build").glob(
        "*.elf"
    ):  # an export made without the toolchain
        elf.unlink()
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name.startswith("arm-none-eabi") else real_which(name)
    )
    report = run_verify(run_copy, VerifyOptions(device="qemu://", show_progress=False))
    assert (
        report["partial"]
        and "arm-none-eabi-gcc not found, needed to build the firmware for QEMU" in report["error"]
    )
    assert (
        "apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
        in report["error"]
    )
    shutil.rmtree(run_copy / "export/mcu")
    report = run_verify(run_copy, VerifyOptions(device="qemu://", show_progress=False))
    assert report["partial"] and "--target mcu` first" in report["error"]
