"""The device agent on a real pseudo-terminal, with throttling and fault injection.

`--device /dev/pts/N` then behaves like hardware: the host opens the slave side with pyserial and
the agent serves the master side. Faults cover what breaks on real links (shared/reference/ontarget.md §4).
"""

from __future__ import annotations

import contextlib
import os
import random
import threading
import tty
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.agent import DeviceAgent, load_backend
from edgekit.firmware_bridge.line_noise import LineNoise, NoisyStream, spec_items
from edgekit.firmware_bridge.ports import FdPort, ThrottledPort
from edgekit.firmware_bridge.protocol import Frame, MessageType

MALFORMED = ("empty_log", "unknown_error", "short_result", "wrong_sample", "long_result")
BANNER = b"\r\nU-Boot-ish edgekit emulator\r\nbooting... ok\r\n"


@dataclass
class Faults:
    """Fault injection. Line faults are per byte, each direction (line_noise.NoisyStream); the
    rest are what a device does wrong."""

    bitflip: float = 0.0  # flip one bit of a byte
    drop: float = 0.0  # lose a byte
    duplicate: float = 0.0  # send a byte twice
    garbage: float = 0.0  # insert a random byte
    banner: bool = False  # boot banner and printf noise between frames
    delay_ms: float = 0.0  # delay every `delay_every`-th RESULT
    delay_every: int = 0
    reset_after: int = 0  # reboot once after this many inferences (new boot nonce)
    wrong_hash: bool = False  # report a different model hash
    oversize_after: int = 0  # once, send a run longer than any frame, without delimiter
    perturb_lsb: int = 0  # add ±k LSB to every output
    infer_us: int = 0  # extra time per inference: a slower device
    malformed: str = ""  # once, a CRC-valid frame a buggy firmware sends: one of MALFORMED
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.random = random.Random(self.seed)
        self.results = 0
        self.frames_out = 0
        self.reset_done = False
        noise = LineNoise(self.bitflip, self.drop, self.duplicate, self.garbage)
        self.incoming = NoisyStream(noise, 2 * self.seed)
        self.outgoing = NoisyStream(noise, 2 * self.seed + 1)

    @classmethod
    def parse(cls, spec: str) -> Faults:
        """`bitflip=0.01,drop=0.01,reset_after=5,...`; keys are the field names."""
        names = {f.name: f.type for f in fields(cls) if f.name != "counts"}
        values: dict[str, Any] = {}
        for key, raw in spec_items(spec, list(names), "fault"):
            try:
                values[key] = (
                    raw.lower() in ("1", "true", "yes", "")
                    if names[key] == "bool"
                    else raw
                    if names[key] == "str"
                    else (float(raw) if names[key] == "float" else int(raw))
                )
            except ValueError as err:
                raise DeviceError(f"fault {key}={raw!r} is not a number") from err
        if values.get("malformed", "") not in ("", *MALFORMED):
            raise DeviceError(
                f"unknown malformed={values['malformed']}; use {', '.join(MALFORMED)}"
            )
        return cls(**values)

    def _count(self, name: str) -> None:
        self.counts[name] = self.counts.get(name, 0) + 1

    def corrupt_incoming(self, data: bytes) -> bytes:
        return self.incoming(data)

    def corrupt_outgoing(self, data: bytes) -> bytes:
        data = self.outgoing(data)
        self.frames_out += 1
        if self.banner and self.frames_out % 10 == 1:  # printf noise before every tenth frame
            self._count("noise")
            data = b"[dbg] heap ok\r\n" + data
        return data

    def on_result(self, out: np.ndarray, micros: int) -> tuple[np.ndarray, int]:
        self.results += 1
        if self.infer_us:
            threading.Event().wait(self.infer_us / 1e6)
            micros += self.infer_us
        if self.perturb_lsb:
            signs = np.array([self.random.choice((-1, 1)) for _ in range(out.size)])
            out = np.clip(out.astype(np.int64) + signs * self.perturb_lsb, -128, 127).astype(
                np.int8
            )
            self._count("perturbed")
        if self.delay_every and self.results % self.delay_every == 0:
            threading.Event().wait(self.delay_ms / 1000)
            self._count("delayed")
        return out, micros

    def should_reset(self, inferences: int) -> bool:
        if self.reset_after and not self.reset_done and inferences >= self.reset_after:
            self.reset_done = True
            self._count("reset")
            return True
        return False

    def boot_banner(self) -> bytes:
        return BANNER

    def oversize(self) -> bytes:
        """Once, a run longer than any frame and without delimiter (the receiver must resync)."""
        if (
            self.oversize_after
            and self.results == self.oversize_after
            and "oversize" not in self.counts
        ):
            self._count("oversize")
            return bytes(self.random.randrange(1, 256) for _ in range(5000))
        return b""

    def malformed_reply(self, request: Frame, result: wire.Result) -> bytes | None:
        """Once, instead of a good RESULT: what a firmware with a protocol bug sends."""
        if not self.malformed or "malformed" in self.counts:
            return None
        self._count("malformed")
        good = wire.encode_frame(
            Frame(MessageType.RESULT, request.seq, result.pack(), session=request.session)
        )
        if self.malformed == "empty_log":  # legal to survive: logged empty, the RESULT still counts
            return wire.encode_frame(Frame(MessageType.LOG, 0, b"", session=request.session)) + good
        payload = {
            "unknown_error": wire.Error(200, "").pack(),
            "short_result": result.pack()[:6],
            "wrong_sample": replace(result, sample_id=result.sample_id + 1000).pack(),
            "long_result": result.pack() + b"\x00",
        }[self.malformed]
        kind = MessageType.ERROR if self.malformed == "unknown_error" else MessageType.RESULT
        return wire.encode_frame(Frame(kind, request.seq, payload, session=request.session))

    def model_hash(self, real: bytes) -> bytes:
        return bytes(b ^ 0xFF for b in real) if self.wrong_hash else real


class Emulator:
    """The agent on the master side of a new pty; `path` is the slave to give to `--device`."""

    def __init__(
        self,
        run_dir: str | Path,
        backend: str = "onnxruntime",
        baud: int = 0,
        faults: Faults | None = None,
        credits: int = 4,
    ) -> None:
        self.backend = load_backend(run_dir, backend)
        self.master, slave = os.openpty()
        tty.setraw(slave)
        self.path = os.ttyname(slave)
        self._slave = slave  # kept open so the pty survives between host connections
        os.set_blocking(self.master, False)
        self.fd_port = FdPort(self.master)
        port: Any = self.fd_port
        if baud:
            port = ThrottledPort(port, baud)
            self.throttle = port
        self.faults = faults
        self.agent = DeviceAgent(self.backend, port, faults=faults, credits=credits, baud=baud)
        if baud:
            self.agent.baud_listeners.append(lambda new: setattr(self.throttle, "baud", new))
        if faults is not None and faults.banner:
            port.write(BANNER)
        self.thread = threading.Thread(
            target=self.agent.serve, name="edgekit-emulator", daemon=True
        )
        self._close_lock = threading.Lock()
        self._closed = False

    def start(self) -> Emulator:
        self.thread.start()
        return self

    def close(self) -> None:
        """Stop every thread that touches the pty, then close it; safe to call twice.

        The fds are closed only after the threads are gone: a thread still reading a closed fd
        number that the process has reused for another file would corrupt that file's reads.
        """
        with self._close_lock:
            if self._closed:
                return
            self._closed = True
        self.agent.stop.set()
        self.fd_port.close()
        if hasattr(self, "throttle"):
            self.throttle.close()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join()
        for fd in (self.master, self._slave):
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()
