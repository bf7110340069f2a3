"""Byte ports a device agent serves: a pty's file descriptor, a pyserial port, and a throttle that
paces bytes like a UART at a given baud (a FIFO that keeps receiving while the device computes)."""

from __future__ import annotations

import os
import queue
import select
import threading
import time
from typing import Any, Protocol


class BytePort(Protocol):
    """What the agent reads from and writes to."""

    def read(self, timeout: float) -> bytes: ...
    def write(self, data: bytes) -> None: ...


class FdPort:
    """A raw file descriptor (the master side of a pty).

    Its owner sets `closed` and joins every thread using the port before closing the fd: a
    late read on a closed, reused fd number would steal bytes from an unrelated file.
    """

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.closed = threading.Event()

    def read(self, timeout: float) -> bytes:
        if self.closed.is_set():
            return b""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready or self.closed.is_set():
            return b""
        try:
            return os.read(self.fd, 4096)
        except OSError:  # the other side closed (EIO on a pty)
            return b""

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view and not self.closed.is_set():
            select.select([], [self.fd], [], 0.1)
            try:
                written = os.write(self.fd, view)
            except BlockingIOError:
                continue
            view = view[written:]

    def close(self) -> None:
        self.closed.set()


class SerialPort:
    """A pyserial port (real UART, USB gadget serial, socket://)."""

    def __init__(self, serial: Any) -> None:
        self.serial = serial

    def read(self, timeout: float) -> bytes:
        if self.serial.timeout != timeout:  # pyserial reconfigures the tty on every assignment
            self.serial.timeout = timeout
        return self.serial.read(max(1, self.serial.in_waiting))

    def write(self, data: bytes) -> None:
        self.serial.write(data)


class ThrottledPort:
    """A UART at 8N1 in front of `inner`: bytes arrive at baud/10 per second.

    A wire thread keeps receiving while the agent computes (like a UART FIFO with DMA), so the
    line never idles because the device is busy; outgoing bytes are paced the same way.
    """

    PIECE = 64  # bytes released at a time

    def __init__(self, inner: BytePort, baud: int) -> None:
        self.inner, self.baud = inner, baud
        self.received: queue.Queue[bytes] = queue.Queue()
        self.tx_clock = time.perf_counter()
        self.closed = threading.Event()
        self.thread = threading.Thread(target=self._wire, name="edgekit-uart-rx", daemon=True)
        self.thread.start()

    def _wire(self) -> None:
        clock = time.perf_counter()
        while not self.closed.is_set():
            try:
                data = self.inner.read(0.05)
            except (OSError, ValueError):
                return
            # Re-base the clock only when the line was idle: sleep overshoot must not slow the wire.
            clock = max(clock, time.perf_counter()) if data else clock
            for start in range(0, len(data), self.PIECE):
                if self.closed.is_set():
                    return
                piece = data[start : start + self.PIECE]
                clock += len(piece) * 10 / self.baud
                delay = clock - time.perf_counter()
                if delay > 0:
                    time.sleep(delay)
                self.received.put(piece)

    def read(self, timeout: float) -> bytes:
        try:
            parts = [self.received.get(timeout=timeout)]
        except queue.Empty:
            return b""
        while not self.received.empty():
            parts.append(self.received.get_nowait())
        return b"".join(parts)

    def write(self, data: bytes) -> None:
        self.tx_clock = max(self.tx_clock, time.perf_counter()) + len(data) * 10 / self.baud
        delay = self.tx_clock - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        self.inner.write(data)

    def close(self) -> None:
        """Stop the wire thread and wait for it, so the inner port is no longer read."""
        self.closed.set()
        self.thread.join()
