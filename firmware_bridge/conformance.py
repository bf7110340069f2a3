"""`edgekit device conformance`: a scripted edgekit-wire/2 suite against any device.

What a firmware author runs on the board before `verify`: each check sends exact frames (no
retransmission, no session filtering, unlike the host link) and names what the device got wrong.
The checks follow the conformance checklist of docs/PROTOCOL.md, in its order.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.link import open_port
from edgekit.firmware_bridge.protocol import ErrorCode, Frame, MessageType, ResultStatus


class Failed(Exception):
    """A check's expectation not met; the message says what the device did instead."""


def expect(condition: bool, why: str) -> None:
    """One check: fail with `why` unless `condition` holds."""
    if not condition:
        raise Failed(why)


class Probe:
    """Raw frames to and from a device."""

    def __init__(self, url: str, baud: int, timeout: float, no_reset: bool) -> None:
        self.port = open_port(url, baud, no_reset)
        self.timeout = timeout
        self.decoder = wire.FrameDecoder(wire.DEFAULT_MAX_FRAME)
        self.seq = 0
        self.session = 0

    def send(
        self,
        msg_type: int,
        payload: bytes = b"",
        session: int | None = None,
        seq: int | None = None,
        flags: int = 0,
    ) -> int:
        return self.send_together([(msg_type, payload)], session, seq, flags)[0]

    def send_together(
        self,
        requests: list[tuple[int, bytes]],
        session: int | None = None,
        seq: int | None = None,
        flags: int = 0,
    ) -> list[int]:
        """Frames in one write, so the device receives them back to back; their seqs."""
        seqs, data = [], b""
        for msg_type, payload in requests:
            if seq is None:
                self.seq = (self.seq + 1) & 0xFFFF
            seqs.append(self.seq if seq is None else seq)
            frame = Frame(
                msg_type, seqs[-1], payload, flags, self.session if session is None else session
            )
            data += wire.encode_frame(frame)
        self.port.write(data)
        return seqs

    def replies(self, count: int = 1, wait: float | None = None) -> list[Frame]:
        """Up to `count` frames other than LOG, waiting at most `wait` (default: the timeout)."""
        frames: list[Frame] = []
        deadline = time.perf_counter() + (self.timeout if wait is None else wait)
        while len(frames) < count and (left := deadline - time.perf_counter()) > 0:
            self.port.timeout = min(left, 0.05)
            data = self.port.read(max(1, self.port.in_waiting))
            frames += [f for f in self.decoder.feed(data) if f.type != MessageType.LOG]
        return frames

    def ask(
        self, msg_type: int, payload: bytes = b"", session: int | None = None, **kw: int
    ) -> Frame:
        seq = self.send(msg_type, payload, session, **kw)
        replies = self.replies()
        expect(bool(replies), f"no reply to {name(msg_type)} seq {seq} within {self.timeout} s")
        reply = replies[0]
        expect(reply.seq == seq, f"reply to {name(msg_type)} seq {seq} carries seq {reply.seq}")
        sent_session = self.session if session is None else session
        expect(
            reply.session == sent_session,
            f"reply to {name(msg_type)} carries session {reply.session:08x}, the request "
            f"{sent_session:08x}: a reply replayed from an earlier session",
        )
        return reply

    def hello(self) -> wire.HelloAck:
        self.session = secrets.randbits(32) or 1
        reply = self.ask(MessageType.HELLO, wire.Hello().pack())
        expect(reply.type == MessageType.HELLO_ACK, f"HELLO answered with {name(reply.type)}")
        return wire.HelloAck.unpack(reply.payload)

    def close(self) -> None:
        self.port.close()


def name(msg_type: int) -> str:
    """A message type's name for a failure message, also for types the protocol does not define."""
    return MessageType(msg_type).name if msg_type in set(MessageType) else f"type 0x{msg_type:02x}"


def error_code(frame: Frame, code: ErrorCode, after: str) -> None:
    """Fail unless `frame` is an ERROR carrying `code` (the reply to what `after` describes)."""
    expect(
        frame.type == MessageType.ERROR,
        f"{after}: expected ERROR({code.name}), got {name(frame.type)}",
    )
    got = wire.Error.unpack(frame.payload).code
    expect(got == code, f"{after}: expected ERROR({code.name}), got error code {got}")


@dataclass
class Session:
    """What the checks learn from the device as they go."""

    probe: Probe
    ack: wire.HelloAck | None = None
    outputs: dict[str, bytes] = field(default_factory=dict)

    @property
    def device(self) -> wire.HelloAck:
        expect(self.ack is not None, "needs a successful handshake")
        return self.ack  # type: ignore[return-value]

    def load(self, sample_id: int, data: bytes, start: int = 0) -> None:
        chunk = wire.chunk_size(self.device.max_frame)
        for offset in range(start, start + len(data), chunk):
            piece = data[offset - start : offset - start + chunk]
            reply = self.probe.ask(MessageType.LOAD, wire.Load(sample_id, 0, offset, piece).pack())
            expect(reply.type == MessageType.ACK, f"LOAD answered with {name(reply.type)}")
            expect(
                wire.U32.unpack(reply.payload[:4])[0] == sample_id,
                "LOAD's ACK names another sample",
            )

    def infer(self, sample_id: int, **kw: int) -> wire.Result:
        reply = self.probe.ask(MessageType.INFER, wire.Infer(sample_id).pack(), **kw)
        expect(reply.type == MessageType.RESULT, f"INFER answered with {name(reply.type)}")
        result = wire.Result.unpack(reply.payload)
        expect(
            result.sample_id == sample_id,
            f"RESULT for sample {result.sample_id}, asked {sample_id}",
        )
        return result

    def input(self, fill: int) -> bytes:
        return bytes([fill]) * self.device.inputs[0].nbytes


def handshake(s: Session) -> str:
    """HELLO gets a HELLO_ACK of this protocol version with sane frame, credit and tensor fields."""
    ack = s.probe.hello()
    expect(
        ack.proto == wire.PROTOCOL_VERSION,
        f"HELLO_ACK proto {ack.proto}, expected {wire.PROTOCOL_VERSION}",
    )
    expect(
        wire.MIN_LEGAL_FRAME <= ack.max_frame <= wire.DEFAULT_MAX_FRAME,
        f"max_frame {ack.max_frame} outside {wire.MIN_LEGAL_FRAME}..{wire.DEFAULT_MAX_FRAME} (host_max_frame)",
    )
    expect(
        ack.rx_credits >= 1 and ack.sample_buffers >= 1,
        "rx_credits and sample_buffers must be >= 1",
    )
    expect(len(ack.inputs) >= 1 and len(ack.outputs) >= 1, "no input or output tensor described")
    s.ack = ack
    return f"{ack.firmware} / {ack.runtime}, max_frame {ack.max_frame}, {ack.rx_credits} credits"


def version_refusal(s: Session) -> str:
    """A HELLO offering only versions the device lacks gets BAD_VERSION, and a good one still works."""
    reply = s.probe.ask(MessageType.HELLO, wire.Hello(3, 4).pack())
    error_code(reply, ErrorCode.BAD_VERSION, "HELLO for versions 3..4")
    s.probe.hello()
    return "BAD_VERSION"


def ping(s: Session) -> str:
    """PING echoes its token and carries the boot nonce HELLO_ACK announced."""
    reply = s.probe.ask(MessageType.PING, wire.U32.pack(0x5EED))
    token, nonce = wire.PONG.unpack(reply.payload)
    expect(reply.type == MessageType.PONG and token == 0x5EED, "PONG does not echo the token")
    expect(nonce == s.device.boot_nonce, "PONG's boot nonce differs from HELLO_ACK's")
    return "token echoed"


def infer(s: Session) -> str:
    """A fully loaded sample gives OK with as many bytes as the output descriptor, the same twice."""
    s.load(1, s.input(1))
    result = s.infer(1)
    expect(
        result.status == ResultStatus.OK, f"RESULT status {result.status} for a fully loaded sample"
    )
    expect(
        len(result.data) == s.device.outputs[0].nbytes,
        f"RESULT carries {len(result.data)} bytes, the output descriptor {s.device.outputs[0].nbytes}",
    )
    s.outputs["ones"] = result.data
    s.load(2, s.input(1))
    expect(s.infer(2).data == result.data, "the same input gave a different output")
    return f"{len(result.data)} output bytes, deterministic"


def reply_cache(s: Session) -> str:
    """A retransmitted INFER (same seq, RETRANSMIT flag) is answered from the reply cache, unchanged."""
    s.load(3, s.input(2))
    seq = s.probe.send(MessageType.INFER, wire.Infer(3).pack())
    first = s.probe.replies()
    s.probe.send(MessageType.INFER, wire.Infer(3).pack(), seq=seq, flags=wire.Flags.RETRANSMIT)
    again = s.probe.replies()
    expect(bool(first) and bool(again), "no RESULT to the INFER or to its retransmission")
    expect(again[0].payload == first[0].payload, "a retransmitted INFER got a different RESULT")
    return "retransmission answered identically"


def incomplete(s: Session) -> str:
    """INFER of a half-loaded sample is INCOMPLETE listing exactly the missing byte ranges."""
    size = s.device.inputs[0].nbytes
    half = size // 2
    s.load(4, s.input(3)[:half])
    result = s.infer(4)
    expect(
        result.status == ResultStatus.INCOMPLETE, "INFER of a half-loaded sample was not INCOMPLETE"
    )
    ranges = wire.unpack_ranges(result.data)
    expect(
        ranges == [(half, size - half)],
        f"INCOMPLETE lists {ranges}, missing is [({half}, {size - half})]",
    )
    s.load(4, s.input(3)[half:], start=half)
    expect(
        s.infer(4).status == ResultStatus.OK,
        "the sample completed by a second LOAD is still INCOMPLETE",
    )
    return "missing ranges exact"


def sessions(s: Session) -> str:
    """A new HELLO forgets the reply cache and the buffers; the old session's requests get NEED_HELLO."""
    s.load(5, s.input(4))
    old = s.probe.session
    seq = s.probe.send(MessageType.INFER, wire.Infer(5).pack())
    expect(bool(s.probe.replies()), "no RESULT to INFER")
    s.probe.hello()
    reply = s.probe.ask(MessageType.INFER, wire.Infer(5).pack(), seq=seq)
    result = wire.Result.unpack(reply.payload)
    expect(
        result.status == ResultStatus.INCOMPLETE,
        "a new session's INFER with an old seq was answered from the last session (stale result)",
    )
    stale = s.probe.ask(MessageType.LOAD, wire.Load(5, 0, 0, b"\x00").pack(), session=old)
    error_code(stale, ErrorCode.NEED_HELLO, "a request of the previous session")
    return "cache and buffers forgotten on HELLO"


def credits(s: Session) -> str:
    """As many LOADs as the advertised rx_credits, sent back to back, are all answered in order."""
    chunk = wire.chunk_size(s.device.max_frame)
    data = s.input(5)
    offsets = [o % len(data) for o in range(0, chunk * s.device.rx_credits, chunk)]
    seqs = s.probe.send_together(
        [(MessageType.LOAD, wire.Load(6, 0, o, data[o : o + chunk]).pack()) for o in offsets]
    )
    replies = s.probe.replies(len(seqs))
    expect(
        [r.seq for r in replies] == seqs,
        f"{len(seqs)} LOADs in flight: replies for seqs {[r.seq for r in replies]}, sent {seqs}",
    )
    return f"{len(seqs)} requests in flight, answered in order"


def errors(s: Session) -> str:
    """Each malformed request gets its documented error code (offset, tensor, length, type, baud)."""
    size = s.device.inputs[0].nbytes
    cases: list[tuple[int, bytes, ErrorCode, str]] = [
        (
            MessageType.LOAD,
            wire.Load(7, 0, size, b"\x01").pack(),
            ErrorCode.BAD_OFFSET,
            "LOAD past the end",
        ),
        (
            MessageType.LOAD,
            wire.Load(7, len(s.device.inputs), 0, b"\x01").pack(),
            ErrorCode.BAD_TENSOR,
            "LOAD of an unknown tensor",
        ),
        (MessageType.INFER, b"\x07\x00", ErrorCode.BAD_LENGTH, "a 2-byte INFER"),
        (0x7F, b"", ErrorCode.UNSUPPORTED, "unknown type 0x7f"),
        (
            MessageType.SET_BAUD,
            wire.U32.pack(s.device.max_baud + 1),
            ErrorCode.UNSUPPORTED,
            "SET_BAUD above max_baud",
        ),
    ]
    for msg_type, payload, code, what in cases:
        error_code(s.probe.ask(msg_type, payload), code, what)
    return "BAD_OFFSET, BAD_TENSOR, BAD_LENGTH, UNSUPPORTED (type and baud)"


def bad_frames(s: Session) -> str:
    """A bad CRC, an oversize run and text between frames are dropped silently; the link goes on."""
    body = wire.HEADER.pack(2, MessageType.PING, 0, s.probe.session, 999, 4) + b"\x01\x02\x03\x04"
    corrupt = b"\x00" + wire.cobs_encode(body + b"\x00\x00\x00\x00") + b"\x00"
    for what, junk in (
        ("a frame with a bad CRC", corrupt),
        ("an oversize run", b"\x55" * (2 * s.device.max_frame + 64)),
        ("text between frames", b"boot: ok\r\n"),
    ):
        s.probe.port.write(junk)
        stray = s.probe.replies(wait=0.2)
        expect(not stray, f"{what} was answered ({name(stray[0].type)})" if stray else "")
        reply = s.probe.ask(MessageType.PING, wire.U32.pack(1))
        expect(reply.type == MessageType.PONG, f"after {what} PING got {name(reply.type)}")
    return "dropped silently, PING answered after each"


def in_order(s: Session) -> str:
    """Pipelined LOAD, INFER and PING are answered in the order sent."""
    data = s.input(6)
    seqs = s.probe.send_together(
        [
            (MessageType.LOAD, wire.Load(8, 0, 0, data[:8]).pack()),
            (MessageType.INFER, wire.Infer(8).pack()),
            (MessageType.PING, wire.U32.pack(2)),
        ]
    )
    replies = s.probe.replies(3)
    expect(
        [r.seq for r in replies] == seqs,
        f"replies in the order {[r.seq for r in replies]}, sent {seqs}",
    )
    return "LOAD, INFER, PING answered in order"


def reset(s: Session) -> str:
    """RESET is acknowledged, the device reboots with a new nonce and wants HELLO before anything else."""
    before = s.device.boot_nonce
    reply = s.probe.ask(MessageType.RESET)
    expect(reply.type == MessageType.ACK, f"RESET answered with {name(reply.type)}")
    time.sleep(0.2)  # booting
    s.probe.replies(wait=0.5)  # a boot banner, if any
    error_code(
        s.probe.ask(MessageType.LOAD, wire.Load(9, 0, 0, b"\x01").pack()),
        ErrorCode.NEED_HELLO,
        "LOAD after RESET",
    )
    ack = s.probe.hello()
    expect(ack.boot_nonce != before, "the boot nonce did not change across RESET")
    s.ack = ack
    return "NEED_HELLO after reset, new boot nonce"


CHECKS: list[tuple[str, Callable[[Session], str]]] = [
    ("handshake", handshake),
    ("version_refusal", version_refusal),
    ("ping", ping),
    ("load_and_infer", infer),
    ("reply_cache", reply_cache),
    ("incomplete_ranges", incomplete),
    ("sessions", sessions),
    ("credits", credits),
    ("errors", errors),
    ("bad_frames", bad_frames),
    ("in_order", in_order),
    ("reset", reset),
]


@dataclass(frozen=True)
class Outcome:
    """One check's verdict and why."""

    name: str
    passed: bool
    detail: str
    seconds: float


def run_conformance(
    url: str,
    baud: int = 921600,
    timeout: float = 1.0,
    no_reset: bool = False,
    report: Callable[[Outcome], None] = lambda outcome: None,
) -> list[Outcome]:
    """Every check in order; each outcome is passed to `report` as soon as it is known."""
    probe = Probe(url, baud, timeout, no_reset)
    session = Session(probe)
    outcomes = []
    try:
        for check_name, check in CHECKS:
            start = time.perf_counter()
            try:
                outcome = Outcome(check_name, True, check(session), 0.0)
            except Failed as failed:
                outcome = Outcome(check_name, False, str(failed), 0.0)
            except (wire.ProtocolError, ValueError) as err:
                outcome = Outcome(check_name, False, f"malformed payload: {err}", 0.0)
            except DeviceError:
                raise
            outcome = Outcome(
                outcome.name, outcome.passed, outcome.detail, time.perf_counter() - start
            )
            outcomes.append(outcome)
            report(outcome)
    finally:
        probe.close()
    return outcomes
