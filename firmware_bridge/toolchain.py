"""The C toolchain and QEMU around the generated model: make, section sizes, booting a firmware.

Debian packages everything (shared/reference/mcu.md): gcc for host builds, gcc-arm-none-eabi +
libnewlib-arm-none-eabi for Cortex-M, qemu-system-arm for the MPS2 AN386 board. A missing tool
is one error line naming the apt-get command.
"""

from __future__ import annotations

import os
import re
import select
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from edgekit.errors import EdgekitError, ExportError

APT_INSTALL = (
    "apt-get update && apt-get install -y gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm"
)
HOST_TOOLS = ("gcc", "make")
ARM_TOOLS = ("arm-none-eabi-gcc", "arm-none-eabi-size", "qemu-system-arm")
BOARDS = {"mps2-an386": "Arm MPS2 AN386, Cortex-M4 at 25 MHz (QEMU)"}
DEFAULT_BOARD = "mps2-an386"


@dataclass(frozen=True)
class FirmwareBuild:
    """One firmware flavour of the exported Makefile: its make target and the ELF files it makes."""

    make_target: str
    device_elf: str  # the edgekit-wire device
    selftest_elf: str  # the footprint self-test


FIRMWARE_BUILDS = {
    "dsp": FirmwareBuild("mps2", "edgekit_device_mps2.elf", "edgekit_selftest_mps2.elf"),
    "portable": FirmwareBuild(
        "mps2-portable", "edgekit_device_mps2_portable.elf", "edgekit_selftest_mps2_portable.elf"
    ),
}
SYSTICK_HZ = 25_000_000  # the MPS2 boards' processor clock, which SysTick counts
ICOUNT_SHIFT = 0  # QEMU -icount: 2^shift ns of virtual time per instruction
INSTRUCTIONS_PER_TICK = 1e9 / SYSTICK_HZ / 2**ICOUNT_SHIFT  # 40: SysTick ticks to instructions
PTY_LINE = re.compile(rb"char device redirected to (/dev/pts/\d+)")  # QEMU's first line


def missing_tools(names: tuple[str, ...]) -> list[str]:
    """The named programs not on PATH."""
    return [name for name in names if shutil.which(name) is None]


def require_tools(names: tuple[str, ...], error: type[EdgekitError], purpose: str) -> None:
    """One error naming the apt-get command when a needed program is missing."""
    missing = missing_tools(names)
    if missing:
        fix = "apt-get install -y gcc make" if set(missing) <= set(HOST_TOOLS) else APT_INSTALL
        raise error(f"{', '.join(missing)} not found, needed to {purpose}; install with: {fix}")


def make(
    folder: Path, targets: list[str], build_dir: Path, error: type[EdgekitError] = ExportError
) -> None:
    """`make TARGETS` in an export/mcu folder; a compiler error becomes one line with its first message."""
    result = subprocess.run(
        ["make", "-s", "-C", str(folder), f"BUILD={build_dir.resolve()}", *targets],
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode:
        lines = [
            line for line in (result.stderr + result.stdout).splitlines() if "error" in line.lower()
        ]
        first = (lines or (result.stderr + result.stdout).splitlines() or ["no output"])[0]
        raise error(f"building {' '.join(targets)} in {folder} failed: {first.strip()[:200]}")


def section_sizes(elf: Path) -> dict[str, int]:
    """Bytes per section (`arm-none-eabi-size -A`)."""
    output = subprocess.run(
        ["arm-none-eabi-size", "-A", str(elf)], capture_output=True, text=True, check=True
    ).stdout
    sizes = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = int(parts[1])
    return sizes


@dataclass
class QemuDevice:
    """A firmware booted in `qemu-system-arm -icount shift=0`; `pty` is its UART0."""

    process: subprocess.Popen[bytes]
    pty: str
    board: str
    keepalive_fd: int | None = None  # a pty fd held open: QEMU drops UART output with no client

    def close(self) -> None:
        if self.keepalive_fd is not None:
            os.close(self.keepalive_fd)
            self.keepalive_fd = None
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def qemu_command(elf: Path, board: str, serial: str) -> list[str]:
    """`-icount shift=0`: one instruction per ns of virtual time, so counts repeat exactly.
    `sleep=off`: with QEMU's default (an idle CPU waits for real time to reach its next timer)
    replies came tens of ms late and verify timed out (measured: 113 timeouts in 36 windows,
    against 0 with sleep=off)."""
    return [
        "qemu-system-arm",
        "-M",
        board,
        "-nographic",
        "-monitor",
        "none",
        "-icount",
        f"shift={ICOUNT_SHIFT},sleep=off",
        "-serial",
        serial,
        "-kernel",
        str(elf),
    ]


def _read_until(
    process: subprocess.Popen[bytes], pattern: re.Pattern[bytes], timeout: float
) -> re.Match[bytes] | None:
    """Read QEMU's output until `pattern` matches, it exits, or `timeout` passes."""
    assert process.stdout is not None
    output = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([process.stdout], [], [], 0.1)
        if ready:
            chunk = os.read(process.stdout.fileno(), 4096)
            if not chunk:
                return None
            output += chunk
            found = pattern.search(output)
            if found:
                return found
        elif process.poll() is not None:
            return None
    return None


def boot_qemu(
    elf: Path, board: str, error: type[EdgekitError], timeout: float = 20.0
) -> QemuDevice:
    """Boot `elf` with UART0 on a new pty; one error line if QEMU fails or prints no pty."""
    if board not in BOARDS:
        raise error(f"unknown QEMU board '{board}'; supported: {', '.join(BOARDS)}")
    require_tools(("qemu-system-arm",), error, "boot the firmware")
    process = subprocess.Popen(
        qemu_command(elf, board, "pty"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    found = _read_until(process, PTY_LINE, timeout)
    if found is None:
        device = QemuDevice(process, "", board)
        device.close()
        raise error(
            f"qemu-system-arm -M {board} did not start or printed no pty within {timeout:.0f} s "
            f"(exit code {process.returncode}); run `{' '.join(qemu_command(elf, board, 'pty'))}` to see why"
        )
    return QemuDevice(process, found.group(1).decode(), board)


@dataclass(frozen=True)
class SelfTest:
    """The self-test firmware's result line: windows, runs per window, windows bit-exact, SysTick
    ticks in all and per step, and the stack high-water mark in bytes."""

    windows: int
    runs: int
    exact: int
    ticks: int
    stack: int
    step_ticks: tuple[int, ...]

    @property
    def inferences(self) -> int:
        return self.windows * self.runs


def run_selftest(elf: Path, board: str, timeout: float = 120.0) -> SelfTest:
    """Boot a self-test firmware with UART0 on stdout and parse its one result line."""
    process = subprocess.Popen(
        qemu_command(elf, board, "stdio"),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        found = _read_until(process, re.compile(rb"EDGEKIT-SELFTEST(.*?) end"), timeout)
    finally:
        QemuDevice(process, "", board).close()
    if found is None:
        raise ExportError(
            f"the self-test firmware {elf.name} printed no result in QEMU within {timeout:.0f} s"
        )
    items = [item.partition("=") for item in found.group(1).decode().split()]  # name=value ...
    fields = {name: int(value) for name, _, value in items if name != "step"}
    steps = tuple(int(value) for name, _, value in items if name == "step")
    return SelfTest(
        fields["windows"], fields["runs"], fields["exact"], fields["ticks"], fields["stack"], steps
    )
