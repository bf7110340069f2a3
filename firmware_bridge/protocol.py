"""edgekit-wire/2: the wire protocol as pure functions and dataclasses (no I/O).

Frame on the wire: 0x00 COBS(header | payload | crc32_le(header | payload)) 0x00.
Every 0x00 ends a frame, so a receiver resynchronises at the next delimiter after any garbage.
The header carries the host's session id, so a reply from an earlier session can't pass for a fresh
one. docs/PROTOCOL.md is the normative description; this module follows it byte for byte.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any

PROTOCOL_VERSION = 2
# version u8 | type u8 | flags u8 | session u32 | seq u16 | payload length u16
HEADER = struct.Struct("<BBBIHH")
# edgekit-wire/1's header (no session): parsed only so a host can name a v1 device
V1_HEADER = struct.Struct("<BBBHH")
CRC = struct.Struct("<I")  # CRC-32/IEEE (zlib.crc32) of header + payload, little-endian
DELIMITER = b"\x00"
MIN_FRAME = HEADER.size + CRC.size  # 15 bytes before COBS
WIRE_OVERHEAD = MIN_FRAME + 3  # + two delimiters + one COBS code byte (frames up to 254 bytes)
MIN_LEGAL_FRAME = 64  # every side accepts frames of at least this size
DEFAULT_MAX_FRAME = 1024  # largest decoded frame (header + payload + CRC) a side accepts


class MessageType(IntEnum):
    """Message types of edgekit-wire/2 (docs/PROTOCOL.md, section Messages)."""

    HELLO = 0x01  # host -> device: protocol range, host max frame
    HELLO_ACK = 0x02  # device -> host: identity, capabilities, tensor descriptors
    SET_BAUD = 0x03  # host -> device: switch baud after the ACK
    ACK = 0x04  # device -> host: request done (LOAD, SET_BAUD, RESET)
    LOAD = 0x10  # host -> device: a chunk of one input tensor of one sample
    INFER = 0x11  # host -> device: run the model on a loaded sample
    RESULT = 0x12  # device -> host: outputs and device-measured time
    LOG = 0x20  # device -> host, any time: text for humans
    ERROR = 0x21  # device -> host: request refused, with a code
    PING = 0x30  # host -> device: liveness, returns the boot nonce
    PONG = 0x31
    RESET = 0x32  # host -> device: reboot (ACK first); the boot nonce changes


class Flags(IntEnum):
    """Header flag bits."""

    RETRANSMIT = 0x01  # host: this frame repeats an earlier seq (informational)


class ErrorCode(IntEnum):
    """Why a device refused a request (ERROR's code)."""

    BAD_VERSION = 1  # no common protocol version
    NEED_HELLO = 2  # request before HELLO (e.g. after a reset)
    BAD_LENGTH = 3  # payload malformed or too short
    BAD_OFFSET = 4  # LOAD outside the tensor
    BAD_TENSOR = 5  # unknown tensor index
    INFER_FAILED = 6
    UNSUPPORTED = 7  # unknown message type or baud


class ResultStatus(IntEnum):
    """RESULT's status: done, or which bytes of the sample are missing."""

    OK = 0
    INCOMPLETE = 1  # input not fully loaded: data lists the missing byte ranges; host resends those


class LogLevel(IntEnum):
    """LOG's severity."""

    DEBUG = 0
    INFO = 1
    WARNING = 2
    ERROR = 3


class DType(IntEnum):
    """Tensor element types a descriptor can name."""

    INT8 = 0
    UINT8 = 1
    INT16 = 2
    INT32 = 3
    FLOAT32 = 4


DTYPE_SIZE = {DType.INT8: 1, DType.UINT8: 1, DType.INT16: 2, DType.INT32: 4, DType.FLOAT32: 4}
DTYPE_NUMPY = {
    DType.INT8: "<i1",
    DType.UINT8: "<u1",
    DType.INT16: "<i2",
    DType.INT32: "<i4",
    DType.FLOAT32: "<f4",
}


class ProtocolError(ValueError):
    """A payload that does not parse; the receiver answers BAD_LENGTH or drops it."""


# ----------------------------------------------------------------------------- COBS
def cobs_encode(data: bytes) -> bytes:
    """Consistent Overhead Byte Stuffing: the output has no 0x00; overhead <= 1 byte per 254."""
    out = bytearray()
    for block in data.split(b"\x00"):
        while len(block) >= 254:
            out.append(0xFF)
            out += block[:254]
            block = block[254:]
        out.append(len(block) + 1)
        out += block
    return bytes(out)


def cobs_decode(data: bytes) -> bytes:
    """Undo COBS framing; a malformed block is a ValueError."""
    out = bytearray()
    index, length = 0, len(data)
    while index < length:
        code = data[index]
        if code == 0:
            raise ProtocolError("zero byte inside a COBS frame")
        block = data[index + 1 : index + code]
        if len(block) != code - 1 or b"\x00" in block:
            raise ProtocolError("truncated COBS block")
        out += block
        index += code
        if code != 0xFF and index < length:
            out.append(0)
    return bytes(out)


# ----------------------------------------------------------------------------- frames
@dataclass(frozen=True)
class Frame:
    """One decoded frame: type, sequence number, payload, flags, session."""

    type: int
    seq: int
    payload: bytes = b""
    flags: int = 0
    session: int = 0  # the host's session id; a reply carries the one of its request
    version: int = PROTOCOL_VERSION


def encode_frame(frame: Frame) -> bytes:
    """A frame on the wire: COBS(header | payload | crc32) followed by 0x00."""
    if frame.version == 1:  # only for naming v1 devices (the host's probe) and testing that
        header = V1_HEADER.pack(1, frame.type, frame.flags, frame.seq & 0xFFFF, len(frame.payload))
    else:
        header = HEADER.pack(
            frame.version,
            frame.type,
            frame.flags,
            frame.session & 0xFFFFFFFF,
            frame.seq & 0xFFFF,
            len(frame.payload),
        )
    body = header + frame.payload
    # A leading delimiter ends any text the sender printed before the frame (boot banners, printf).
    return DELIMITER + cobs_encode(body + CRC.pack(zlib.crc32(body))) + DELIMITER


def parse_frame(decoded: bytes) -> Frame:
    """Check CRC and length of a COBS-decoded frame; the version byte picks the header layout."""
    if len(decoded) < V1_HEADER.size + CRC.size:
        raise ProtocolError("frame shorter than header + CRC")
    body, (crc,) = decoded[:-4], CRC.unpack(decoded[-4:])
    if zlib.crc32(body) != crc:
        raise ProtocolError("CRC mismatch")
    if body[0] == 1:
        version, msg_type, flags, seq, length = V1_HEADER.unpack_from(body)
        session, size = 0, V1_HEADER.size
    elif len(body) >= HEADER.size:
        version, msg_type, flags, session, seq, length = HEADER.unpack_from(body)
        size = HEADER.size
    else:
        raise ProtocolError("frame shorter than header + CRC")
    if length != len(body) - size:
        raise ProtocolError("length field does not match the frame")
    return Frame(msg_type, seq, bytes(body[size:]), flags, session, version)


@dataclass
class DecoderStats:
    """What the incremental decoder dropped and why."""

    frames: int = 0
    # COBS-valid frames whose CRC/length failed: dropped, the sender retransmits
    crc_errors: int = 0
    # bytes between delimiters that are not frames (boot banners, printf, noise)
    garbage_bytes: int = 0
    oversize: int = 0  # runs longer than max_frame without a delimiter, discarded


class FrameDecoder:
    """Incremental decoder: feed any byte chunks, get whole frames; memory bounded by max_frame."""

    def __init__(self, max_frame: int = DEFAULT_MAX_FRAME) -> None:
        self.max_encoded = max_frame + max_frame // 254 + 2
        self.buffer = bytearray()
        self.skipping = False  # inside an oversize run: drop until the next delimiter
        self.stats = DecoderStats()

    def feed(self, data: bytes) -> list[Frame]:
        frames: list[Frame] = []
        start = 0
        while True:
            end = data.find(b"\x00", start)
            chunk = data[start:] if end < 0 else data[start:end]
            if self.skipping:
                self.stats.garbage_bytes += len(chunk)
            else:
                self.buffer += chunk
                if len(self.buffer) > self.max_encoded:
                    self.stats.oversize += 1
                    self.stats.garbage_bytes += len(self.buffer)
                    self.buffer.clear()
                    self.skipping = True
            if end < 0:
                return frames
            if not self.skipping and self.buffer:
                frame = self._finish(bytes(self.buffer))
                if frame is not None:
                    frames.append(frame)
            self.buffer.clear()
            self.skipping = False
            start = end + 1

    def _finish(self, encoded: bytes) -> Frame | None:
        try:
            decoded = cobs_decode(encoded)
        except ProtocolError:
            self.stats.garbage_bytes += len(encoded) + 1
            return None
        try:
            frame = parse_frame(decoded)
        except ProtocolError:
            self.stats.crc_errors += 1
            return None
        self.stats.frames += 1
        return frame


# ----------------------------------------------------------------------------- payloads
def _pack_str(text: str) -> bytes:
    raw = text.encode()[:255]
    return bytes([len(raw)]) + raw


def _unpack_str(data: bytes, offset: int) -> tuple[str, int]:
    length = data[offset]
    end = offset + 1 + length
    if end > len(data):
        raise ProtocolError("string runs past the payload")
    return data[offset + 1 : end].decode(errors="replace"), end


def _unpack(fmt: struct.Struct, data: bytes, offset: int = 0) -> tuple[Any, ...]:
    if len(data) < offset + fmt.size:
        raise ProtocolError(f"payload too short ({len(data)} < {offset + fmt.size} bytes)")
    return fmt.unpack_from(data, offset)


@dataclass(frozen=True)
class Hello:
    """HELLO: the host's protocol range and largest frame."""

    proto_min: int = PROTOCOL_VERSION
    proto_max: int = PROTOCOL_VERSION
    host_max_frame: int = DEFAULT_MAX_FRAME
    FORMAT = struct.Struct("<BBH")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.proto_min, self.proto_max, self.host_max_frame)

    @classmethod
    def unpack(cls, data: bytes) -> Hello:
        return cls(*_unpack(cls.FORMAT, data))


@dataclass(frozen=True)
class TensorDesc:
    """dtype u8 | rank u8 | dims u16 x rank | scale f32 | zero_point i32 (real = (q - zp) * scale)."""

    dtype: DType
    shape: tuple[int, ...]
    scale: float = 1.0
    zero_point: int = 0

    @property
    def nbytes(self) -> int:
        count = 1
        for dim in self.shape:
            count *= dim
        return count * DTYPE_SIZE[self.dtype]

    def pack(self) -> bytes:
        return (
            struct.pack("<BB", self.dtype, len(self.shape))
            + struct.pack(f"<{len(self.shape)}H", *self.shape)
            + struct.pack("<fi", self.scale, self.zero_point)
        )

    @classmethod
    def unpack(cls, data: bytes, offset: int) -> tuple[TensorDesc, int]:
        dtype, rank = _unpack(struct.Struct("<BB"), data, offset)
        shape = _unpack(struct.Struct(f"<{rank}H"), data, offset + 2)
        scale, zero_point = _unpack(struct.Struct("<fi"), data, offset + 2 + 2 * rank)
        try:
            dtype = DType(dtype)
        except ValueError as err:
            raise ProtocolError(f"unknown dtype {dtype}") from err
        return cls(dtype, tuple(shape), scale, zero_point), offset + 2 + 2 * rank + 8


@dataclass(frozen=True)
class HelloAck:
    """HELLO_ACK: the device's identity, model hash, capabilities and tensor descriptors."""

    proto: int
    boot_nonce: int
    firmware: str
    model_hash: bytes  # first 8 bytes of the model file's sha256
    runtime: str
    capabilities: int
    max_frame: int
    rx_credits: int
    sample_buffers: int  # samples the device can hold partly loaded at once
    max_baud: int
    inputs: tuple[TensorDesc, ...] = field(default_factory=tuple)
    outputs: tuple[TensorDesc, ...] = field(default_factory=tuple)
    FIXED = struct.Struct("<BI")
    # capabilities, max_frame, rx_credits, sample_buffers, max_baud, n_in, n_out
    TAIL = struct.Struct("<IHBBIBB")

    def pack(self) -> bytes:
        data = (
            self.FIXED.pack(self.proto, self.boot_nonce)
            + _pack_str(self.firmware)
            + self.model_hash[:8].ljust(8, b"\0")
        )
        data += _pack_str(self.runtime)
        data += self.TAIL.pack(
            self.capabilities,
            self.max_frame,
            self.rx_credits,
            self.sample_buffers,
            self.max_baud,
            len(self.inputs),
            len(self.outputs),
        )
        return data + b"".join(t.pack() for t in (*self.inputs, *self.outputs))

    @classmethod
    def unpack(cls, data: bytes) -> HelloAck:
        proto, nonce = _unpack(cls.FIXED, data)
        firmware, offset = _unpack_str(data, cls.FIXED.size)
        model_hash = data[offset : offset + 8]
        if len(model_hash) != 8:
            raise ProtocolError("HELLO_ACK truncated in model hash")
        runtime, offset = _unpack_str(data, offset + 8)
        caps, max_frame, credits, buffers, max_baud, n_in, n_out = _unpack(cls.TAIL, data, offset)
        offset += cls.TAIL.size
        tensors = []
        for _ in range(n_in + n_out):
            tensor, offset = TensorDesc.unpack(data, offset)
            tensors.append(tensor)
        return cls(
            proto,
            nonce,
            firmware,
            model_hash,
            runtime,
            caps,
            max_frame,
            credits,
            buffers,
            max_baud,
            tuple(tensors[:n_in]),
            tuple(tensors[n_in:]),
        )


@dataclass(frozen=True)
class Load:
    """LOAD: a chunk of one input tensor of one sample."""

    sample_id: int
    tensor: int
    offset: int
    data: bytes
    FORMAT = struct.Struct("<IBI")
    OVERHEAD = FORMAT.size

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.sample_id, self.tensor, self.offset) + self.data

    @classmethod
    def unpack(cls, data: bytes) -> Load:
        sample_id, tensor, offset = _unpack(cls.FORMAT, data)
        return cls(sample_id, tensor, offset, bytes(data[cls.FORMAT.size :]))


@dataclass(frozen=True)
class Infer:
    """INFER: run the model on a loaded sample (repeat times, for timing)."""

    sample_id: int
    repeat: int = 1
    flags: int = 0
    FORMAT = struct.Struct("<IHB")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.sample_id, self.repeat, self.flags)

    @classmethod
    def unpack(cls, data: bytes) -> Infer:
        return cls(*_unpack(cls.FORMAT, data))


@dataclass(frozen=True)
class Result:
    """RESULT: the outputs and device time, or the missing byte ranges."""

    sample_id: int
    status: int
    cycles: int
    micros: int
    tensor: int
    data: bytes
    FORMAT = struct.Struct("<IBIIB")

    def pack(self) -> bytes:
        return (
            self.FORMAT.pack(self.sample_id, self.status, self.cycles, self.micros, self.tensor)
            + self.data
        )

    @classmethod
    def unpack(cls, data: bytes) -> Result:
        sample_id, status, cycles, micros, tensor = _unpack(cls.FORMAT, data)
        return cls(sample_id, status, cycles, micros, tensor, bytes(data[cls.FORMAT.size :]))


@dataclass(frozen=True)
class Error:
    """ERROR: a refused request's code and text."""

    code: int
    detail: str = ""
    FORMAT = struct.Struct("<H")

    def pack(self) -> bytes:
        return self.FORMAT.pack(self.code) + _pack_str(self.detail)

    @classmethod
    def unpack(cls, data: bytes) -> Error:
        (code,) = _unpack(cls.FORMAT, data)
        detail = _unpack_str(data, 2)[0] if len(data) > 2 else ""
        return cls(code, detail)


@dataclass(frozen=True)
class Log:
    """LOG: text for humans, any time."""

    level: int
    text: str

    def pack(self) -> bytes:
        return bytes([self.level]) + self.text.encode()[:512]

    @classmethod
    def unpack(cls, data: bytes) -> Log:
        if not data:
            raise ProtocolError("empty LOG")
        return cls(data[0], data[1:].decode(errors="replace"))


U32 = struct.Struct("<I")
PONG = struct.Struct("<II")  # echoed token, boot nonce
RANGE = struct.Struct("<II")  # offset u32 | length u32: input bytes an INCOMPLETE RESULT lacks


def pack_ranges(ranges: list[tuple[int, int]], room: int) -> bytes:
    """As many missing `(offset, length)` ranges as fit in `room` bytes; the host asks again for the rest."""
    return b"".join(RANGE.pack(*r) for r in ranges[: max(0, room) // RANGE.size])


def unpack_ranges(data: bytes) -> list[tuple[int, int]]:
    """INCOMPLETE's missing ranges, (offset, length) pairs."""
    if len(data) % RANGE.size:
        raise ProtocolError(f"{len(data)} bytes of missing ranges, not a multiple of {RANGE.size}")
    return [RANGE.unpack_from(data, i) for i in range(0, len(data), RANGE.size)]


def chunk_size(max_frame: int) -> int:
    """Input bytes per LOAD so the decoded frame fits the peer's max_frame."""
    return max_frame - MIN_FRAME - Load.OVERHEAD
