"""A seeded byte-level fault injector: what a noisy UART line does to a byte stream.

Each byte, independently: one bit flipped, lost, sent twice, or preceded by a random byte
(garbage). `NoisyStream` mangles one direction; `NoisyWire` runs two of them between two
pseudo-terminals, paced at a baud rate if asked, so any device (the emulator, `edgekit device
serve` in its own process, a firmware under QEMU) can be tested behind a noisy line.
"""

from __future__ import annotations

import contextlib
import os
import select
import threading
import time
import tty
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, fields

import numpy as np
from edgekit.errors import DeviceError


def spec_items(spec: str, names: list[str], what: str) -> Iterator[tuple[str, str]]:
    """`key=value` items of a comma-separated fault spec; an unknown key is one clear error."""
    for item in filter(None, spec.split(",")):
        key, _, raw = item.partition("=")
        if key not in names:
            raise DeviceError(f"unknown {what} '{key}'; use {', '.join(names)}")
        yield key, raw


@dataclass(frozen=True)
class LineNoise:
    """Per-byte probabilities of each fault."""

    flip: float = 0.0
    drop: float = 0.0
    duplicate: float = 0.0
    garbage: float = 0.0

    @classmethod
    def parse(cls, spec: str) -> LineNoise:
        """`flip=0.01,drop=0.002`; every value a probability per byte."""
        values: dict[str, float] = {}
        for key, raw in spec_items(spec, [f.name for f in fields(cls)], "line fault"):
            try:
                values[key] = float(raw)
            except ValueError as err:
                raise DeviceError(f"line fault {key}={raw!r} is not a number") from err
            if not 0 <= values[key] <= 1:
                raise DeviceError(f"line fault {key}={raw} is not a probability in [0, 1]")
        return cls(**values)


class NoisyStream:
    """One direction of a noisy line, seeded, counting what it did."""

    def __init__(self, noise: LineNoise, seed: int) -> None:
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.counts: Counter[str] = Counter()
        self.probabilities = np.array([noise.flip, noise.drop, noise.duplicate, noise.garbage])[
            :, None
        ]

    def __call__(self, data: bytes) -> bytes:
        if not data or not self.probabilities.any():
            return data
        flip, drop, duplicate, garbage = self.rng.random((4, len(data))) < self.probabilities
        if not (flip | drop | duplicate | garbage).any():
            return data
        self.counts.update(
            flip=int(flip.sum()),
            drop=int(drop.sum()),
            duplicate=int(duplicate.sum()),
            garbage=int(garbage.sum()),
        )
        line = np.frombuffer(data, dtype=np.uint8).copy()
        line[flip] ^= (1 << self.rng.integers(0, 8, int(flip.sum()))).astype(np.uint8)
        copies = 1 - drop.astype(np.int64) + duplicate
        out = np.repeat(line, copies)
        at = (np.cumsum(copies) - copies)[garbage]  # where each garbage byte's victim now starts
        noise = self.rng.integers(0, 256, len(at)).astype(np.uint8)
        return np.insert(out, at, noise).tobytes()


class NoisyWire:
    """Two pseudo-terminals joined by a noisy line: give `device_path` to the device and
    `host_path` to the host. Bytes are paced at `baud` (8N1) when it is set."""

    PIECE = 64

    def __init__(self, noise: LineNoise, seed: int = 0, baud: int = 0) -> None:
        self.baud = baud
        self.closed = threading.Event()
        self.fds: list[int] = []
        (device_master, self.device_path), (host_master, self.host_path) = (
            self._pty(),
            self._pty(),
        )
        self.to_device, self.to_host = (
            NoisyStream(noise, 2 * seed),
            NoisyStream(noise, 2 * seed + 1),
        )
        self.threads = [
            threading.Thread(
                target=self._pump,
                args=(host_master, device_master, self.to_device),
                name="edgekit-wire-down",
                daemon=True,
            ),
            threading.Thread(
                target=self._pump,
                args=(device_master, host_master, self.to_host),
                name="edgekit-wire-up",
                daemon=True,
            ),
        ]
        for thread in self.threads:
            thread.start()

    def _pty(self) -> tuple[int, str]:
        master, slave = os.openpty()
        tty.setraw(slave)
        os.set_blocking(master, False)
        self.fds += [master, slave]  # the slave stays open so the pty outlives its users
        return master, os.ttyname(slave)

    def _pump(self, source: int, target: int, stream: NoisyStream) -> None:
        clock = time.perf_counter()
        while not self.closed.is_set():
            ready, _, _ = select.select([source], [], [], 0.05)
            if not ready:
                continue
            try:
                data = stream(os.read(source, 4096))
            except OSError:
                continue
            clock = max(clock, time.perf_counter())
            for start in range(0, len(data), self.PIECE):
                piece = data[start : start + self.PIECE]
                if self.baud:
                    clock += len(piece) * 10 / self.baud
                    time.sleep(max(0.0, clock - time.perf_counter()))
                self._write(target, piece)

    def _write(self, fd: int, data: bytes) -> None:
        deadline = time.perf_counter() + 1.0  # nobody reading for a second: the bytes are lost
        while data and not self.closed.is_set() and time.perf_counter() < deadline:
            select.select([], [fd], [], 0.05)
            with contextlib.suppress(BlockingIOError, InterruptedError):
                data = data[os.write(fd, data) :]

    def close(self) -> None:
        self.closed.set()
        for thread in self.threads:
            thread.join()
        for fd in self.fds:
            with contextlib.suppress(OSError):
                os.close(fd)

    def __enter__(self) -> NoisyWire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
