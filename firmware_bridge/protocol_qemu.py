"""pyserial URL handler `qemu://[BOARD]?run=RUN[&build=dsp|portable]`: the exported firmware on an
emulated Cortex-M board.

Boots `export/mcu/build/edgekit_device_mps2*.elf` (built from the export's sources into a
temporary folder when the export has no build) in `qemu-system-arm -icount shift=0 -serial pty`
and opens that pty like any serial port; closing the port shuts QEMU down.
"""

from __future__ import annotations

import os
import select
import struct
import tempfile
import time
import tty
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import serial
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import toolchain
from edgekit.firmware_bridge.protocol import Frame, FrameDecoder, MessageType, encode_frame
from edgekit.rundir import layout

SETTLE_S = 0.25  # after QEMU prints its pty, before the first open (see wait_until_answering)


def parse_url(url: str) -> tuple[str, dict[str, str]]:
    """(board, options) of a qemu:// URL; an unknown board or build is an error naming the valid ones."""
    parsed = urlparse(url)
    board = parsed.netloc or toolchain.DEFAULT_BOARD
    options = {k: v[-1] for k, v in parse_qs(parsed.query).items()}
    if board not in toolchain.BOARDS:
        raise DeviceError(
            f"qemu://{board}: unknown board; supported: {', '.join(toolchain.BOARDS)}"
        )
    if options.get("build", "dsp") not in toolchain.FIRMWARE_BUILDS:
        raise DeviceError(f"qemu:// build={options['build']} is unknown; use dsp or portable")
    return board, options


def firmware(run_dir: Path, build: str, scratch: Path) -> Path:
    """The exported firmware ELF; built into `scratch` when the export was made without the Arm toolchain."""
    folder = run_dir / layout.export_folder("mcu")
    if not (folder / "Makefile").is_file():
        raise DeviceError(f"{folder} is missing; run `edgekit export {run_dir} --target mcu` first")
    flavour = toolchain.FIRMWARE_BUILDS[build]
    if (folder / "build" / flavour.device_elf).is_file():
        return folder / "build" / flavour.device_elf
    toolchain.require_tools(("arm-none-eabi-gcc",), DeviceError, "build the firmware for QEMU")
    toolchain.make(folder, [flavour.make_target], scratch, DeviceError)
    return scratch / flavour.device_elf


def wait_until_answering(pty: str, timeout: float = 20.0) -> int:
    """Probe with PING until the firmware answers; returns the probe's pty fd, to be kept open.

    QEMU drops what the firmware sends while no client holds the pty (it polls for one about once
    a second), so the caller keeps this fd open while QEMU runs and hosts may come and go. A
    client that opens the pty the moment QEMU prints it is never answered (measured: nothing in
    4 s when opened at once, answers when opened 50 ms later): the first probe waits SETTLE_S,
    and a probe that stays unanswered closes the pty and tries again."""
    ping = encode_frame(Frame(MessageType.PING, 0, struct.pack("<I", 0x51E3C0DE)))
    deadline = time.monotonic() + timeout
    time.sleep(SETTLE_S)
    while time.monotonic() < deadline:
        fd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd)
            decoder, until = FrameDecoder(), min(deadline, time.monotonic() + 3.0)
            while time.monotonic() < until:
                os.write(fd, ping)
                if select.select([fd], [], [], 0.25)[0] and any(
                    f.type == MessageType.PONG for f in decoder.feed(os.read(fd, 4096))
                ):
                    time.sleep(0.1)  # later PONGs to the repeated PINGs: drained below
                    while select.select([fd], [], [], 0)[0] and os.read(fd, 4096):
                        pass
                    return fd
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)
        time.sleep(1.0)
    raise DeviceError(
        f"the firmware in QEMU did not answer on {pty} within {timeout:.0f} s; "
        "run `make -C RUN/export/mcu qemu` to watch it boot"
    )


def boot(elf: Path, board: str) -> toolchain.QemuDevice:
    """QEMU running `elf`, its firmware answering on the returned device's pty."""
    qemu = toolchain.boot_qemu(elf, board, DeviceError)
    try:
        qemu.keepalive_fd = wait_until_answering(qemu.pty)
    except BaseException:
        qemu.close()
        raise
    return qemu


class Serial(serial.Serial):
    """pyserial's class for `qemu://` URLs: the firmware booted in QEMU, on its pty."""

    def open(self) -> None:
        board, options = parse_url(str(self.portstr))
        if "run" not in options:
            raise DeviceError("qemu:// needs ?run=RUN_DIR (edgekit verify adds it for you)")
        self.scratch = tempfile.TemporaryDirectory(prefix="edgekit-qemu-")
        try:
            elf = firmware(
                Path(options["run"]), options.get("build", "dsp"), Path(self.scratch.name)
            )
            self.qemu: toolchain.QemuDevice | None = boot(elf, board)
        except BaseException:
            self.scratch.cleanup()
            raise
        self._port = self.portstr = self.qemu.pty  # pyserial opens `portstr`
        super().open()

    def close(self) -> None:
        super().close()
        qemu = getattr(self, "qemu", None)
        if qemu is not None:
            qemu.close()
            self.qemu = None
            self.scratch.cleanup()
