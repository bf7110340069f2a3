"""pyserial URL handler `emu://?run=RUN&backend=onnxruntime&baud=0&faults=...`: an emulated device.

Registered with `serial.protocol_handler_packages`; it starts an `Emulator` on a pty and opens
its slave like any serial port, so the host code path is the same as with hardware.
"""

from __future__ import annotations

from urllib.parse import parse_qs, urlparse

import serial
from edgekit.errors import DeviceError
from edgekit.firmware_bridge.emulator import Emulator, Faults


class Serial(serial.Serial):
    """pyserial's class for `emu://` URLs: an emulated device on a pty."""

    def open(self) -> None:
        url = urlparse(str(self.portstr))
        options = {k: v[-1] for k, v in parse_qs(url.query).items()}
        if "run" not in options:
            raise DeviceError("emu:// needs ?run=RUN_DIR (edgekit verify adds it for you)")
        self.emulator: Emulator | None = Emulator(
            options["run"],
            options.get("backend", "onnxruntime"),
            int(options.get("baud", 0)),
            Faults.parse(options.get("faults", "")) if options.get("faults") else None,
            int(options.get("credits", 4)),
        ).start()
        self._port = self.portstr = self.emulator.path  # pyserial opens `portstr`
        super().open()

    def close(self) -> None:
        super().close()
        emulator = getattr(self, "emulator", None)
        if emulator is not None:
            emulator.close()
            self.emulator = None
