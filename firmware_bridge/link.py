"""Host side of edgekit-wire/1 over pyserial: handshake, pipelined streaming, retries, reset recovery.

Ports are pyserial URLs: `/dev/ttyUSB0`, `/dev/pts/N`, `socket://host:port`, `emu://?run=RUN`.
"""

from __future__ import annotations

import errno
import math
import struct
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.protocol import ErrorCode, Frame, MessageType, ResultStatus

SEQ_WINDOW = 32  # never run more than this many seqs ahead of the oldest unanswered request


def malformed(frame: Frame, why: str) -> DeviceError:
    name = (
        MessageType(frame.type).name
        if frame.type in set(MessageType)
        else f"type 0x{frame.type:02x}"
    )
    return DeviceError(
        f"device sent a malformed {name} frame ({why}); the firmware does not follow docs/PROTOCOL.md"
    )


def decoded(frame: Frame, message: Any) -> Any:
    """The frame's payload as `message`; a payload that does not parse is the device's fault."""
    try:
        return message.unpack(frame.payload)
    except (ValueError, struct.error) as err:  # ProtocolError is a ValueError
        raise malformed(frame, str(err)) from None


def describe(error: wire.Error) -> str:
    """`BAD_OFFSET 80+16 > 84`; a code this host does not know is named by its number."""
    name = (
        ErrorCode(error.code).name
        if error.code in set(ErrorCode)
        else f"unknown error code {error.code}"
    )
    return f"{name} {error.detail}".rstrip()


def open_port(url: str, baud: int, no_reset: bool = False) -> Any:
    """Open a port URL; missing, busy or forbidden ports give one clear error."""
    import serial

    if "edgekit.firmware_bridge" not in serial.protocol_handler_packages:
        serial.protocol_handler_packages.append("edgekit.firmware_bridge")
    try:
        port = serial.serial_for_url(
            url, baudrate=baud, timeout=0.05, write_timeout=5, do_not_open=True
        )
        if no_reset:  # keep DTR/RTS low so boards that reset on open (Arduino-style) keep running
            port.dtr = False
            port.rts = False
        port.open()
        return port
    except DeviceError:
        raise
    except (serial.SerialException, OSError, ValueError) as err:
        code = getattr(err, "errno", None)
        text = str(err)
        if (
            code == errno.ENOENT
            or "No such file" in text
            or ("could not open port" in text and "No such" in text)
        ):
            raise DeviceError(
                f"device {url} does not exist; check the cable and the port name (ls /dev/tty*), or use emu://"
            ) from None
        if code == errno.EACCES or "Permission denied" in text:
            raise DeviceError(
                f"permission denied on {url}; add your user to the 'dialout' group (or run with access to the port)"
            ) from None
        raise DeviceError(
            f"cannot open {url} at {baud} baud: {text.splitlines()[0][:160]}"
        ) from None


@dataclass
class LinkStats:
    tx_bytes: int = 0
    rx_bytes: int = 0
    tx_payload_bytes: int = 0  # input tensor bytes inside LOAD frames
    requests: int = 0
    retries: int = 0
    timeouts: int = 0
    incomplete: int = 0
    stray_replies: int = 0  # replies to a seq no longer outstanding (late duplicates)
    resets: int = 0
    recoveries: int = 0
    superseded: int = 0  # unanswered requests dropped because their sample's RESULT came
    logs: list[str] = field(default_factory=list)


@dataclass
class Request:
    type: MessageType
    payload: bytes
    sample_id: int
    seq: int = 0
    sent: float = 0.0
    attempts: int = 0


class HostLink:
    """One connection to a device speaking edgekit-wire/1."""

    def __init__(self, url: str, baud: int = 921600, timeout: float = 1.0, retries: int = 3, max_resets: int = 3,
                 no_reset: bool = False, max_frame: int = wire.DEFAULT_MAX_FRAME) -> None:  # fmt: skip
        self.url, self.baud, self.timeout, self.retries, self.max_resets = (
            url,
            baud,
            timeout,
            retries,
            max_resets,
        )
        self.max_frame = max_frame
        self.port = open_port(url, baud, no_reset)
        self.decoder = wire.FrameDecoder(max_frame)
        self.stats = LinkStats()
        self.seq = 0
        self.device: wire.HelloAck | None = None

    def close(self) -> None:
        self.port.close()

    # ------------------------------------------------------------------ raw I/O
    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def _write(self, frame: Frame) -> None:
        encoded = wire.encode_frame(frame)
        try:
            self.port.write(encoded)
        except Exception as err:
            raise DeviceError(
                f"write to {self.url} failed ({type(err).__name__}); was the device unplugged?"
            ) from None
        self.stats.tx_bytes += len(encoded)

    def _read(self, wait: float) -> list[Frame]:
        try:
            waiting = self.port.in_waiting
            # pyserial reconfigures the tty on every timeout change (ioctl + tcsetattr): keep it
            # at 0 while bytes are queued and at 10 ms steps otherwise, so it rarely changes.
            timeout = 0.0 if waiting else math.ceil(max(0.0, wait) * 100) / 100
            if timeout != self.port.timeout:
                self.port.timeout = timeout
            data = self.port.read(max(1, waiting))
        except Exception as err:
            raise DeviceError(
                f"read from {self.url} failed ({type(err).__name__}); was the device unplugged?"
            ) from None
        self.stats.rx_bytes += len(data)
        frames = []
        for frame in self.decoder.feed(data):
            if frame.type == MessageType.LOG:
                text = frame.payload[1:].decode(errors="replace") if frame.payload else ""
                self.stats.logs.append(text)  # an empty LOG is logged empty, not fatal
            else:
                frames.append(frame)
        return frames

    def transact(
        self,
        msg_type: MessageType,
        payload: bytes,
        expect: MessageType,
        attempts: int | None = None,
    ) -> Frame:
        """One request, stop-and-wait, retransmitting the same seq on timeout."""
        seq = self._next_seq()
        damaged_before = self._damaged_bytes_and_frames()
        for attempt in range(attempts or self.retries + 1):
            self._write(Frame(msg_type, seq, payload, wire.Flags.RETRANSMIT if attempt else 0))
            self.stats.requests += 1
            self.stats.retries += bool(attempt)
            deadline = time.perf_counter() + self.timeout
            while (left := deadline - time.perf_counter()) > 0:
                for frame in self._read(left):
                    if frame.seq != seq:
                        self.stats.stray_replies += 1
                    elif frame.type == MessageType.ERROR:
                        error = decoded(frame, wire.Error)
                        raise DeviceError(f"device refused {msg_type.name}: {describe(error)}")
                    elif frame.type == expect:
                        return frame
            self.stats.timeouts += 1
        tries = attempts or self.retries + 1
        crc, garbage, oversize = (
            now - before
            for now, before in zip(self._damaged_bytes_and_frames(), damaged_before, strict=True)
        )
        if crc or oversize:  # the device answered; the link corrupted what it said
            raise DeviceError(
                f"{msg_type.name} to {self.url} at {self.baud} baud failed after {tries} tries: replies "
                f"arrived corrupted ({crc} CRC errors, {oversize} oversize runs, {garbage} garbage bytes); "
                "the link is noisy: lower --baud, check cable and ground, or raise --retries"
            )
        raise DeviceError(
            f"no answer to {msg_type.name} from {self.url} at {self.baud} baud after {tries} tries"
            + (f" ({garbage} bytes of non-frame output seen)" if garbage else "")
            + "; check the port, the baud rate and that the firmware speaks edgekit-wire/1"
        )

    def _damaged_bytes_and_frames(self) -> tuple[int, int, int]:
        stats = self.decoder.stats
        return stats.crc_errors, stats.garbage_bytes, stats.oversize

    # ------------------------------------------------------------------ handshake
    def hello(self) -> wire.HelloAck:
        ack = decoded(
            self.transact(
                MessageType.HELLO,
                wire.Hello(host_max_frame=self.max_frame).pack(),
                MessageType.HELLO_ACK,
            ),
            wire.HelloAck,
        )
        if ack.proto != wire.PROTOCOL_VERSION:
            raise DeviceError(
                f"device speaks edgekit-wire/{ack.proto}, this host speaks /{wire.PROTOCOL_VERSION}; update the firmware or edgekit"
            )
        if self.device is not None and ack.boot_nonce != self.device.boot_nonce:
            self.stats.resets += 1
        self.device = ack
        return ack

    def set_baud(self, baud: int) -> None:
        self.transact(MessageType.SET_BAUD, wire.U32.pack(baud), MessageType.ACK)
        self.port.baudrate = baud
        self.baud = baud

    def ping(self) -> int:
        frame = self.transact(MessageType.PING, wire.U32.pack(0xC0FFEE), MessageType.PONG)
        if len(frame.payload) != wire.PONG.size:
            raise malformed(frame, f"{len(frame.payload)} bytes, expected {wire.PONG.size}")
        return int(wire.PONG.unpack(frame.payload)[1])

    # ------------------------------------------------------------------ streaming
    def stream(
        self, samples: list[tuple[int, bytes]], repeat: int = 1
    ) -> Iterator[tuple[int, wire.Result]]:
        """Send every sample and yield `(sample_id, RESULT)` once per sample, in completion order.

        Up to `rx_credits` requests are in flight, so the next LOAD overlaps the current INFER.
        """
        assert self.device is not None, "call hello() first"
        done: set[int] = set()
        position = 0
        data_of = dict(samples)
        queue: deque[Request] = deque()
        outstanding: dict[int, Request] = {}

        def requests_for(sample_id: int, data: bytes) -> list[Request]:
            chunk = wire.chunk_size(self.device.max_frame)  # type: ignore[union-attr]
            loads = [
                Request(
                    MessageType.LOAD,
                    wire.Load(sample_id, 0, o, data[o : o + chunk]).pack(),
                    sample_id,
                )
                for o in range(0, len(data), chunk)
            ]
            return [
                *loads,
                Request(MessageType.INFER, wire.Infer(sample_id, repeat).pack(), sample_id),
            ]

        def send(request: Request) -> None:
            if not request.attempts:
                request.seq = self._next_seq()
            self._write(
                Frame(
                    request.type,
                    request.seq,
                    request.payload,
                    wire.Flags.RETRANSMIT if request.attempts else 0,
                )
            )
            request.sent, request.attempts = time.perf_counter(), request.attempts + 1
            self.stats.requests += 1
            if request.type == MessageType.LOAD:
                self.stats.tx_payload_bytes += len(request.payload) - wire.Load.OVERHEAD
            outstanding[request.seq] = request

        def recover() -> None:
            nonlocal position
            self.stats.recoveries += 1
            outstanding.clear()
            queue.clear()
            self.hello()
            if self.stats.resets > self.max_resets:
                raise DeviceError(
                    f"device on {self.url} reset {self.stats.resets} times (more than --max-resets {self.max_resets})"
                )
            # resume from the first sample without a RESULT
            position = next(
                (i for i, (sid, _) in enumerate(samples) if sid not in done), len(samples)
            )

        credits = max(1, self.device.rx_credits)

        def in_window() -> bool:
            # the device caches replies of the last SEQ_WINDOW seqs, so a retransmission can always be replayed
            oldest = min(outstanding, key=lambda s: (s - self.seq) & 0xFFFF, default=None)
            return oldest is None or ((self.seq + 1 - oldest) & 0xFFFF) < SEQ_WINDOW

        while len(done) < len(samples):
            while len(outstanding) < credits and in_window():
                if not queue:
                    while position < len(samples) and samples[position][0] in done:
                        position += 1
                    if position >= len(samples):
                        break
                    queue.extend(requests_for(*samples[position]))
                    position += 1
                send(queue.popleft())
            # each request may wait behind the others in the window
            window_time = credits * (self.max_frame + 16) * 10 / max(self.baud, 1)
            oldest = min((r.sent for r in outstanding.values()), default=time.perf_counter())
            for frame in self._read(
                max(0.0, min(0.05, oldest + self.timeout + window_time - time.perf_counter()))
            ):
                request = outstanding.pop(frame.seq, None)
                if request is None or frame.type not in (
                    MessageType.ACK,
                    MessageType.RESULT,
                    MessageType.ERROR,
                ):
                    self.stats.stray_replies += 1
                    continue
                if frame.type == MessageType.ERROR:
                    error = decoded(frame, wire.Error)
                    if error.code == ErrorCode.NEED_HELLO:  # the device rebooted under us
                        recover()
                        break
                    raise DeviceError(
                        f"device refused {request.type.name} for sample {request.sample_id}: {describe(error)}"
                    )
                if frame.type == MessageType.RESULT:
                    result = decoded(frame, wire.Result)
                    if result.sample_id != request.sample_id or result.status not in set(
                        ResultStatus
                    ):
                        raise malformed(
                            frame,
                            f"sample {result.sample_id} status {result.status} in answer to the INFER of sample {request.sample_id}",
                        )
                    if (
                        result.status == ResultStatus.INCOMPLETE
                    ):  # input lost or evicted: load the sample again
                        self.stats.incomplete += 1
                        if request.sample_id not in done:
                            queue.extendleft(
                                reversed(
                                    requests_for(request.sample_id, data_of[request.sample_id])
                                )
                            )
                    elif result.sample_id not in done:
                        done.add(result.sample_id)
                        # the device ran this sample's INFER after its LOADs: a LOAD whose ACK was
                        # lost needs no retransmission
                        for seq in [
                            s for s, r in outstanding.items() if r.sample_id == result.sample_id
                        ]:
                            del outstanding[seq]
                            self.stats.superseded += 1
                        yield result.sample_id, result
            now = time.perf_counter()
            for request in list(outstanding.values()):
                if now - request.sent > self.timeout + window_time:
                    self.stats.timeouts += 1
                    if request.attempts > self.retries:
                        recover()
                        break
                    self.stats.retries += 1
                    send(request)

    def stats_dict(self) -> dict[str, Any]:
        stats = asdict(self.stats)
        stats["logs"] = stats["logs"][-20:]
        stats.update({k: v for k, v in asdict(self.decoder.stats).items()})
        return stats
