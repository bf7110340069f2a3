"""Host side of edgekit-wire/2 over pyserial: sessions, pipelined streaming, selective resends.

A noisy link costs little: only the LOAD chunks the device reports missing are resent, the chunk
size follows the measured byte error rate, a request passed over by a later reply is resent at once
(the device answers in order), and the rest waits an adaptive timeout. Ports are pyserial URLs:
`/dev/ttyUSB0`, `/dev/pts/N`, `socket://host:port`, `emu://?run=RUN`.
"""

from __future__ import annotations

import errno
import itertools
import math
import secrets
import struct
import time
from collections import defaultdict, deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.protocol import ErrorCode, Frame, MessageType, ResultStatus

MIN_RTO_S = 0.02  # the adaptive retransmission timeout never goes below this
MIN_CHUNK = 16  # smallest LOAD chunk, however noisy the link
# while the device keeps answering, a request gets NOISY_TRIES x (retries + 1) tries
NOISY_TRIES = 4
ERROR_RATE_MEMORY = 0.97  # weight of past LOAD outcomes per new one in the error-rate estimate
BAUD_GRACE_S = 2.0  # as the device's: it falls back to the old rate after this long without a frame


class Refused(DeviceError):
    """The device answered ERROR: a definite answer, not a lost one."""


def malformed(frame: Frame, why: str) -> DeviceError:
    """The error for a CRC-valid frame whose content breaks the protocol (a firmware bug)."""
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
        raise malformed(frame, str(err)) from err


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
            ) from err
        if code == errno.EACCES or "Permission denied" in text:
            raise DeviceError(
                f"permission denied on {url}; add your user to the 'dialout' group (or run with access to the port)"
            ) from err
        raise DeviceError(
            f"cannot open {url} at {baud} baud: {text.splitlines()[0][:160]}"
        ) from err


@dataclass
class LinkStats:
    """Counters of one link: bytes, requests, retries and every kind of fault seen."""

    tx_bytes: int = 0
    rx_bytes: int = 0
    tx_payload_bytes: int = 0  # input tensor bytes inside LOAD frames
    requests: int = 0
    retries: int = 0  # retransmissions of a request with its seq
    timeouts: int = 0
    incomplete: int = 0  # INCOMPLETE results: the device listed missing input bytes
    resent_bytes: int = 0  # input bytes sent again because the device reported them missing
    stray_replies: int = 0  # replies to a seq no longer outstanding (late duplicates)
    stale_replies: int = 0  # replies carrying another session's id, ignored
    resets: int = 0
    recoveries: int = 0
    unconfirmed_loads: int = 0  # LOADs passed over or timed out unanswered: never resent, the
    # sample's INFER answer (OK or the missing ranges) tells whether they arrived
    chunk_bytes: int = 0  # LOAD chunk size in use, adapted to the error rate
    byte_error_rate: float = 0.0  # estimated host->device byte error rate
    logs: list[str] = field(default_factory=list)


@dataclass(eq=False)  # identity: two requests are never the same one
class Request:
    """A request in flight: what was sent, when, how often, and for which sample bytes."""

    type: MessageType
    payload: bytes
    sample_id: int
    seq: int = 0
    sent: float = 0.0
    attempts: int = 0
    first_order: int = 0  # send order of the first and the latest transmission
    order: int = 0
    wire_bytes: int = 0
    span: tuple[int, int] = (0, 0)  # LOAD: the input bytes it carries


class RoundTrip:
    """Jacobson's smoothed round-trip time and variation, for one request type."""

    def __init__(self) -> None:
        self.srtt: float | None = None
        self.rttvar = 0.0

    def sample(self, rtt: float) -> None:
        if self.srtt is None:
            self.srtt, self.rttvar = rtt, rtt / 2
        else:
            self.rttvar = 0.75 * self.rttvar + 0.25 * abs(self.srtt - rtt)
            self.srtt = 0.875 * self.srtt + 0.125 * rtt

    def timeout(self, ceiling: float) -> float:
        if self.srtt is None:
            return ceiling
        return min(ceiling, max(MIN_RTO_S, self.srtt + 4 * self.rttvar))


class ErrorRate:
    """The host->device byte error rate, from which LOAD frames arrived (decaying memory)."""

    def __init__(self) -> None:
        self.frames = self.lost = self.bytes = 0.0

    def record(self, wire_bytes: int, lost: bool) -> None:
        self.frames = self.frames * ERROR_RATE_MEMORY + 1
        self.lost = self.lost * ERROR_RATE_MEMORY + lost
        self.bytes = self.bytes * ERROR_RATE_MEMORY + wire_bytes

    @property
    def per_byte(self) -> float:
        if not self.frames:
            return 0.0
        survived = 1 - self.lost / (self.frames + 1)  # one imagined good frame: never 0
        return 1 - survived ** (self.frames / self.bytes)


def best_chunk(byte_error_rate: float, largest: int) -> int:
    """The LOAD chunk that maximises payload per byte sent when each byte is lost with this rate:
    c / (c + h) * (1 - e) ** (c + h), h the per-frame overhead, is largest at the root below."""
    if byte_error_rate <= 0:
        return largest
    h = wire.WIRE_OVERHEAD + wire.Load.OVERHEAD
    k = -math.log1p(-min(byte_error_rate, 0.5))
    best = (-h + math.sqrt(h * h + 4 * h / k)) / 2
    return int(min(largest, max(MIN_CHUNK, best)))


class HostLink:
    """One connection to a device speaking edgekit-wire/2."""

    def __init__(
        self,
        url: str,
        baud: int = 921600,
        timeout: float = 1.0,
        retries: int = 3,
        max_resets: int = 3,
        no_reset: bool = False,
        max_frame: int = wire.DEFAULT_MAX_FRAME,
    ) -> None:
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
        self.session = 0  # PING and HELLO's errors before any session carry 0
        self.sessions = {0}  # every session this link opened
        self.device: wire.HelloAck | None = None
        self.round_trips: dict[MessageType, RoundTrip] = defaultdict(RoundTrip)
        self.error_rate = ErrorRate()
        self.orders = itertools.count()

    def close(self) -> None:
        self.port.close()

    # ------------------------------------------------------------------ raw I/O
    def _next_seq(self) -> int:
        self.seq = (self.seq + 1) & 0xFFFF
        return self.seq

    def _write(self, frame: Frame) -> int:
        encoded = wire.encode_frame(frame)
        try:
            self.port.write(encoded)
        except Exception as err:
            raise DeviceError(
                f"write to {self.url} failed ({type(err).__name__}); was the device unplugged?"
            ) from err
        self.stats.tx_bytes += len(encoded)
        return len(encoded)

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
            ) from err
        self.stats.rx_bytes += len(data)
        frames = []
        for frame in self.decoder.feed(data):
            if frame.version == 1:
                raise DeviceError(
                    f"device on {self.url} speaks edgekit-wire/1, this host speaks edgekit-wire/"
                    f"{wire.PROTOCOL_VERSION}; update the firmware to docs/PROTOCOL.md (version 2)"
                )
            if frame.type == MessageType.LOG:
                text = frame.payload[1:].decode(errors="replace") if frame.payload else ""
                self.stats.logs.append(text)  # an empty LOG is logged empty, not fatal
            elif frame.session not in self.sessions:
                name = (
                    MessageType(frame.type).name if frame.type in set(MessageType) else frame.type
                )
                raise DeviceError(
                    f"device answered {name} seq {frame.seq} with session {frame.session:08x}, "
                    "which this host never opened: it replays replies cached in an earlier run; "
                    "key the reply cache by (session, type, seq) and clear it on HELLO "
                    "(docs/PROTOCOL.md, Sessions)"
                )
            elif frame.session != self.session:
                self.stats.stale_replies += 1  # an earlier session of ours: never taken as fresh
            else:
                frames.append(frame)
        return frames

    def _damage(self) -> tuple[int, int, int]:
        stats = self.decoder.stats
        return stats.crc_errors, stats.garbage_bytes, stats.oversize

    def noisy_error(self, what: str, tries: int, since: tuple[int, int, int]) -> DeviceError:
        crc, garbage, oversize = (
            now - then for now, then in zip(self._damage(), since, strict=True)
        )
        return DeviceError(
            f"{what} to {self.url} at {self.baud} baud failed after {tries} tries: replies arrived "
            f"corrupted ({crc} CRC errors, {oversize} oversize runs, {garbage} garbage bytes, "
            f"{self.stats.retries} retries"
            + (
                f", estimated byte error rate {self.error_rate.per_byte:.2%}"
                if self.error_rate.frames
                else ""
            )
            + "); the link is noisy: lower --baud, check cable and ground, or raise --retries"
        )

    def transact(
        self,
        msg_type: MessageType,
        payload: bytes,
        expect: MessageType,
        probe: bytes = b"",
    ) -> Frame:
        """One request, stop-and-wait, retransmitting the same seq; `probe` is written after
        every retransmission (HELLO's v1 probe). While replies arrive corrupted the device is
        alive, and the request gets NOISY_TRIES times the tries."""
        seq = self._next_seq()
        damaged_before = self._damage()
        timing = self.round_trips[msg_type]
        tries = silent = 0
        while silent <= self.retries and tries < NOISY_TRIES * (self.retries + 1):
            damage = self._damage()
            self._write(
                Frame(msg_type, seq, payload, wire.Flags.RETRANSMIT if tries else 0, self.session)
            )
            if tries and probe:
                self.port.write(probe)
            sent = time.perf_counter()
            self.stats.requests += 1
            self.stats.retries += bool(tries)
            tries += 1
            deadline = sent + timing.timeout(self.timeout) * 2 ** min(tries - 1, 6)
            deadline = min(deadline, sent + self.timeout)
            while (left := deadline - time.perf_counter()) > 0:
                for frame in self._read(left):
                    if frame.seq != seq:
                        self.stats.stray_replies += 1
                    elif frame.type == MessageType.ERROR:
                        error = decoded(frame, wire.Error)
                        raise Refused(f"device refused {msg_type.name}: {describe(error)}")
                    elif frame.type == expect:
                        if tries == 1:
                            timing.sample(time.perf_counter() - sent)
                        return frame
            self.stats.timeouts += 1
            silent += self._damage() == damage  # nothing, not even a damaged frame, came back
        crc, garbage, oversize = (
            now - before for now, before in zip(self._damage(), damaged_before, strict=True)
        )
        if crc or oversize:  # the device answered; the link corrupted what it said
            raise self.noisy_error(msg_type.name, tries, damaged_before)
        raise DeviceError(
            f"no answer to {msg_type.name} from {self.url} at {self.baud} baud after {tries} tries"
            + (f" ({garbage} bytes of non-frame output seen)" if garbage else "")
            + "; check the port, the baud rate and that the firmware speaks edgekit-wire/2"
        )

    # ------------------------------------------------------------------ handshake
    def hello(self) -> wire.HelloAck:
        """Start a new session: a fresh random id, so no reply of an earlier one can be taken."""
        self.session = secrets.randbits(32) or 1
        self.sessions.add(self.session)
        # A v1 device drops v2 frames unanswered; a v1-framed HELLO asking for version 2 makes it
        # answer ERROR(BAD_VERSION) in v1 framing, which _read names. A v2 device drops the probe.
        probe = wire.encode_frame(
            Frame(MessageType.HELLO, 0xFFFF, wire.Hello(2, 2, self.max_frame).pack(), version=1)
        )
        ack = decoded(
            self.transact(
                MessageType.HELLO,
                wire.Hello(host_max_frame=self.max_frame).pack(),
                MessageType.HELLO_ACK,
                probe,
            ),
            wire.HelloAck,
        )
        if ack.proto != wire.PROTOCOL_VERSION:
            raise DeviceError(
                f"device speaks edgekit-wire/{ack.proto}, this host speaks "
                f"/{wire.PROTOCOL_VERSION}; update the firmware or edgekit"
            )
        if not wire.MIN_LEGAL_FRAME <= ack.max_frame <= self.max_frame or ack.rx_credits < 1:
            raise malformed(
                Frame(MessageType.HELLO_ACK, 0),
                f"max_frame {ack.max_frame} outside {wire.MIN_LEGAL_FRAME}..{self.max_frame} "
                f"or rx_credits {ack.rx_credits} < 1",
            )
        if self.device is not None and ack.boot_nonce != self.device.boot_nonce:
            self.stats.resets += 1
        self.device = ack
        return ack

    def set_baud(self, baud: int) -> None:
        """Switch both sides; if the ACK was lost the device may have switched anyway: a PING at
        the new rate finds out, else the device falls back after its grace time."""
        old = self.baud
        try:
            self.transact(MessageType.SET_BAUD, wire.U32.pack(baud), MessageType.ACK)
        except Refused:
            raise
        except DeviceError as lost:
            for rate in (baud, old):
                self._switch(rate)
                if rate == old:
                    time.sleep(BAUD_GRACE_S)
                try:
                    self.ping()
                except DeviceError:
                    continue
                if rate == baud:
                    return
                raise DeviceError(
                    f"device did not acknowledge SET_BAUD {baud}; it still answers at {old} baud"
                ) from lost
            raise lost from None
        self._switch(baud)

    def _switch(self, baud: int) -> None:
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

        Requests are pipelined within the device's buffers (rx_credits frames of max_frame bytes,
        sample_buffers open samples), so the next LOAD overlaps the current INFER.
        """
        assert self.device is not None, "call hello() first"
        yield from Stream(self, self.device, samples, repeat).run()

    def stats_dict(self) -> dict[str, Any]:
        stats = asdict(self.stats)
        stats["logs"] = stats["logs"][-20:]
        stats.update({k: v for k, v in asdict(self.decoder.stats).items()})
        return stats


class Stream:
    """One `HostLink.stream` run: the samples' requests in flight over one link, with the state they
    share (what is queued, sent, unanswered, judged, done) as attributes and one method per step."""

    def __init__(
        self, link: HostLink, device: wire.HelloAck, samples: list[tuple[int, bytes]], repeat: int
    ) -> None:
        self.link, self.samples, self.repeat = link, samples, repeat
        self.data_of = dict(samples)
        self.done: set[int] = set()
        self.position = 0  # the next sample to open
        self.queue: deque[Request] = deque()
        self.outstanding: dict[int, Request] = {}  # by seq
        self.unjudged: dict[int, list[Request]] = defaultdict(list)  # LOADs not yet known to arrive
        self.opened: set[int] = set()  # samples started and not done: each holds a device buffer
        self.last_life = self.last_progress = time.perf_counter()  # last valid frame, sample done
        self.credits = max(1, device.rx_credits)
        self.buffers = max(1, device.sample_buffers)
        self.largest_chunk = wire.chunk_size(device.max_frame)
        self.largest = device.max_frame + device.max_frame // 254 + 3  # encoded, delimited
        # each request may wait behind the others in the window
        self.ceiling = link.timeout + self.credits * (link.max_frame + 16) * 10 / max(link.baud, 1)

    def requests_for(self, sample_id: int, ranges: list[tuple[int, int]]) -> list[Request]:
        """LOADs of the ranges in chunks sized for the error rate seen so far, then INFER."""
        stats = self.link.stats
        self.opened.add(sample_id)
        stats.byte_error_rate = self.link.error_rate.per_byte
        chunk = stats.chunk_bytes = best_chunk(stats.byte_error_rate, self.largest_chunk)
        data = self.data_of[sample_id]
        loads = [
            Request(
                MessageType.LOAD,
                wire.Load(sample_id, 0, o, data[o : min(o + chunk, start + length)]).pack(),
                sample_id,
                span=(o, min(o + chunk, start + length)),
            )
            for start, length in ranges
            for o in range(start, start + length, chunk)
        ]
        infer = Request(MessageType.INFER, wire.Infer(sample_id, self.repeat).pack(), sample_id)
        return [*loads, infer]

    def send(self, request: Request) -> None:
        link, stats = self.link, self.link.stats
        if not request.attempts:
            request.seq = link._next_seq()
        request.wire_bytes = link._write(
            Frame(
                request.type,
                request.seq,
                request.payload,
                wire.Flags.RETRANSMIT if request.attempts else 0,
                link.session,
            )
        )
        request.sent, request.attempts = time.perf_counter(), request.attempts + 1
        request.order = next(link.orders)
        if request.attempts == 1:
            request.first_order = request.order
        stats.requests += 1
        stats.retries += request.attempts > 1
        if request.type == MessageType.LOAD:
            stats.tx_payload_bytes += request.span[1] - request.span[0]
            self.unjudged[request.sample_id].append(request)
        self.outstanding[request.seq] = request

    def resend(self, request: Request) -> None:
        """Retransmit; a request past NOISY_TRIES x (retries + 1) tries ends the run only once no
        sample has completed for the whole retry budget (a noisy line that still delivers keeps
        going)."""
        link = self.link
        stalled = time.perf_counter() - self.last_progress > link.timeout * (link.retries + 1)
        if request.attempts >= NOISY_TRIES * (link.retries + 1) and stalled:
            raise link.noisy_error(
                f"{request.type.name} of sample {request.sample_id}", request.attempts, (0, 0, 0)
            )
        self.send(request)

    def settle(self, request: Request) -> None:
        """An unanswered request: a LOAD is left to its sample's INFER answer, the rest resent."""
        if request.type == MessageType.LOAD:
            del self.outstanding[request.seq]
            self.link.stats.unconfirmed_loads += 1
        else:
            self.resend(request)

    def judge(self, sample_id: int, missing: list[tuple[int, int]]) -> None:
        """Record which LOADs of the sample arrived: those not overlapping a missing range."""
        for load in self.unjudged.pop(sample_id, []):
            lost = any(a < load.span[1] and load.span[0] < a + n for a, n in missing)
            self.link.error_rate.record(load.wire_bytes, lost)

    def recover(self) -> None:
        """A new session after the device reset or went silent; resume at the first sample without
        a RESULT."""
        link = self.link
        link.stats.recoveries += 1
        self.outstanding.clear()
        self.queue.clear()
        self.unjudged.clear()
        self.opened.clear()  # the new session starts with empty buffers
        device = link.hello()
        self.largest_chunk = wire.chunk_size(device.max_frame)
        self.last_life = time.perf_counter()
        if link.stats.resets > link.max_resets:
            raise DeviceError(
                f"device on {link.url} reset {link.stats.resets} times (more than --max-resets {link.max_resets})"
            )
        self.position = next(
            (i for i, (sid, _) in enumerate(self.samples) if sid not in self.done),
            len(self.samples),
        )

    def room(self) -> bool:
        """The device buffers rx_credits frames of max_frame bytes: small frames fit more."""
        in_flight = sum(r.wire_bytes for r in self.outstanding.values())
        return not self.outstanding or in_flight + self.largest <= self.credits * self.largest

    def answered(self, frame: Frame, request: Request) -> Iterator[tuple[int, wire.Result]]:
        """Act on the reply to `request`; yields the sample's RESULT once it is complete."""
        link = self.link
        if frame.type == MessageType.ERROR:
            error = decoded(frame, wire.Error)
            if error.code == ErrorCode.NEED_HELLO:  # the device rebooted or lost the session
                self.recover()
                return
            raise Refused(
                f"device refused {request.type.name} for sample {request.sample_id}: {describe(error)}"
            )
        if frame.type == MessageType.ACK:
            if request.type == MessageType.LOAD and request in self.unjudged[request.sample_id]:
                self.unjudged[request.sample_id].remove(request)
                link.error_rate.record(request.wire_bytes, False)
            return
        result = decoded(frame, wire.Result)
        if result.sample_id != request.sample_id or result.status not in set(ResultStatus):
            raise malformed(
                frame,
                f"sample {result.sample_id} status {result.status} in answer to the INFER "
                f"of sample {request.sample_id}",
            )
        if result.sample_id in self.done:
            return
        if result.status == ResultStatus.INCOMPLETE:  # resend only what the device lacks
            link.stats.incomplete += 1
            missing = incomplete_ranges(frame, result, len(self.data_of[request.sample_id]))
            self.judge(request.sample_id, missing)
            link.stats.resent_bytes += sum(n for _, n in missing)
            self.queue.extendleft(reversed(self.requests_for(request.sample_id, missing)))
            return
        self.last_progress = time.perf_counter()
        self.judge(request.sample_id, [])
        self.done.add(result.sample_id)
        self.opened.discard(result.sample_id)
        yield result.sample_id, result

    def deadline(self, request: Request) -> float:
        """Adaptive timeout, doubled on each retransmission, never above the window's ceiling."""
        rto = self.link.round_trips[request.type].timeout(self.ceiling)
        return request.sent + min(self.ceiling, rto * 2 ** min(request.attempts - 1, 6))

    def fill(self) -> None:
        """Send while the device has room: queued requests first, then the next sample's."""
        while self.room():
            if not self.queue:
                while (
                    self.position < len(self.samples)
                    and self.samples[self.position][0] in self.done
                ):
                    self.position += 1
                if self.position >= len(self.samples) or len(self.opened) >= self.buffers:
                    break  # all sent, or as many samples open as the device buffers
                sample_id, data = self.samples[self.position]
                self.queue.extend(self.requests_for(sample_id, [(0, len(data))]))
                self.position += 1
            self.send(self.queue.popleft())

    def receive(self) -> Iterator[tuple[int, wire.Result]]:
        """Read replies until the first deadline (at most 50 ms) and act on each."""
        link = self.link
        first_due = min(
            (self.deadline(r) for r in self.outstanding.values()), default=time.perf_counter()
        )
        session = link.session
        for frame in link._read(max(0.0, min(0.05, first_due - time.perf_counter()))):
            if link.session != session:
                break  # recovered: the rest of this read belongs to the old session
            self.last_life = time.perf_counter()
            request = self.outstanding.pop(frame.seq, None)
            if request is None or frame.type not in (
                MessageType.ACK,
                MessageType.RESULT,
                MessageType.ERROR,
            ):
                link.stats.stray_replies += 1
                continue
            if request.attempts == 1:
                link.round_trips[request.type].sample(self.last_life - request.sent)
            # The device answers in order: whatever was sent before this request's first
            # transmission and is still unanswered was lost, or its reply was.
            for passed in [r for r in self.outstanding.values() if r.order < request.first_order]:
                self.settle(passed)
            yield from self.answered(frame, request)

    def run(self) -> Iterator[tuple[int, wire.Result]]:
        link = self.link
        while len(self.done) < len(self.samples):
            self.fill()
            yield from self.receive()
            now = time.perf_counter()
            if self.outstanding and now - self.last_life > link.timeout * (link.retries + 1):
                self.recover()  # silence for the whole retry budget: the device lost us
                continue
            for request in [r for r in self.outstanding.values() if now > self.deadline(r)]:
                link.stats.timeouts += 1
                self.settle(request)


def incomplete_ranges(frame: Frame, result: wire.Result, size: int) -> list[tuple[int, int]]:
    """The missing input ranges an INCOMPLETE RESULT lists, checked against the input's size."""
    try:
        ranges = wire.unpack_ranges(result.data)
    except wire.ProtocolError as err:
        raise malformed(frame, str(err)) from err
    if not ranges or any(n <= 0 or a + n > size for a, n in ranges):
        raise malformed(
            frame, f"INCOMPLETE lists missing ranges {ranges[:4]} of a {size}-byte input"
        )
    return ranges
