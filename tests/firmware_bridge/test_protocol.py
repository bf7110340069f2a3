"""The wire protocol alone: framing, CRC, resync, payloads, and a fuzzed decoder."""

from __future__ import annotations

import zlib

import pytest
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.protocol import Frame, FrameDecoder, MessageType
from hypothesis import given, settings
from hypothesis import strategies as st


@given(st.binary(max_size=2000))
@settings(max_examples=500)
def test_cobs_round_trip_has_no_zero(data: bytes) -> None:
    encoded = wire.cobs_encode(data)
    assert b"\x00" not in encoded and wire.cobs_decode(encoded) == data
    assert len(encoded) <= len(data) + len(data) // 254 + 1


@pytest.mark.parametrize("length", [0, 1, 253, 254, 255, 508, 1000])
def test_cobs_block_boundaries(length: int) -> None:
    for fill in (b"\x00", b"\x11"):
        assert wire.cobs_decode(wire.cobs_encode(fill * length)) == fill * length


def test_frame_layout_is_the_v2_header() -> None:
    """version, type, flags, session u32, seq u16, length u16, payload, CRC-32 (little-endian)."""
    encoded = wire.encode_frame(
        Frame(MessageType.PING, 1, wire.U32.pack(0xC0FFEE), session=0x12345678)
    )
    body = bytes.fromhex("02 30 00 78 56 34 12 01 00 04 00 ee ff c0 00")
    assert encoded[0] == encoded[-1] == 0 and b"\x00" not in encoded[1:-1]
    assert wire.cobs_decode(encoded[1:-1]) == body + zlib.crc32(body).to_bytes(4, "little")


def test_a_v1_frame_is_recognised_as_v1() -> None:
    """The host names a v1 device from its v1-framed answer, so parse_frame reads both headers."""
    frame = Frame(MessageType.ERROR, 9, wire.Error(1, "v1 only").pack(), version=1)
    encoded = wire.encode_frame(frame)
    assert wire.cobs_decode(encoded[1:-1])[:7] == bytes.fromhex("01 21 00 09 00 0a 00")
    assert FrameDecoder().feed(encoded) == [frame]


def test_decoder_skips_garbage_and_counts_crc_errors() -> None:
    decoder = FrameDecoder()
    good = wire.encode_frame(Frame(MessageType.PING, 7, b"\x00\x01"))
    body = wire.HEADER.pack(2, MessageType.PING, 0, 0, 8, 3) + b"abc"
    corrupt = (
        b"\x00" + wire.cobs_encode(body + (zlib.crc32(body) ^ 1).to_bytes(4, "little")) + b"\x00"
    )
    stream = b"boot banner\r\n" + corrupt + good
    frames = [
        f for i in range(len(stream)) for f in decoder.feed(stream[i : i + 1])
    ]  # byte by byte
    assert [f.seq for f in frames] == [7]
    assert decoder.stats.crc_errors == 1 and decoder.stats.garbage_bytes >= len(b"boot banner\r\n")


def test_decoder_memory_is_bounded() -> None:
    decoder = FrameDecoder(max_frame=256)
    decoder.feed(b"\x55" * 100_000)
    assert len(decoder.buffer) <= decoder.max_encoded and decoder.stats.oversize == 1
    assert (
        decoder.feed(wire.encode_frame(Frame(MessageType.PONG, 3)))[0].seq == 3
    )  # resyncs after the run


@given(st.lists(st.binary(max_size=300), max_size=20))
@settings(max_examples=300)
def test_fuzzed_decoder_never_crashes(chunks: list[bytes]) -> None:
    decoder = FrameDecoder(max_frame=512)
    for chunk in chunks:
        for frame in decoder.feed(chunk):
            assert len(frame.payload) <= 512
        assert len(decoder.buffer) <= decoder.max_encoded


def test_payloads_round_trip() -> None:
    tensor = wire.TensorDesc(wire.DType.INT8, (6, 2, 50), 0.125, -3)
    ack = wire.HelloAck(
        1,
        0xDEADBEEF,
        "fw 1.2",
        b"\x01" * 8,
        "onnxruntime",
        5,
        1024,
        4,
        8,
        3_000_000,
        (tensor,),
        (wire.TensorDesc(wire.DType.INT8, (4,), 0.25, 0),),
    )
    assert wire.HelloAck.unpack(ack.pack()) == ack
    assert tensor.nbytes == 600
    messages = (
        wire.Hello(1, 2, 512),
        wire.Load(9, 0, 100, b"\x00\xff"),
        wire.Infer(3, 10, 1),
        wire.Result(3, 0, 1000, 10, 0, b"\x01\x02"),
        wire.Error(2, "send HELLO first"),
        wire.Log(1, "hi"),
    )
    for message in messages:
        assert type(message).unpack(message.pack()) == message


def test_truncated_payloads_raise_protocol_error() -> None:
    with pytest.raises(wire.ProtocolError):
        wire.HelloAck.unpack(b"\x01\x00")
    with pytest.raises(wire.ProtocolError):
        wire.Load.unpack(b"\x01")
    assert wire.chunk_size(1024) + wire.MIN_FRAME + wire.Load.OVERHEAD == 1024


# Canonical COBS vectors (Cheshire & Baker 1999, as listed on Wikipedia's COBS page), no delimiter.
SEQ_254 = bytes(range(1, 255))
COBS_VECTORS = [
    (b"\x00", b"\x01\x01"),
    (b"\x00\x00", b"\x01\x01\x01"),
    (b"\x00\x11\x00", b"\x01\x02\x11\x01"),
    (b"\x11\x22\x00\x33", b"\x03\x11\x22\x02\x33"),
    (b"\x11\x22\x33\x44", b"\x05\x11\x22\x33\x44"),
    (b"\x11\x00\x00\x00", b"\x02\x11\x01\x01\x01"),
    (SEQ_254 + b"\xff", b"\xff" + SEQ_254 + b"\x02\xff"),
    (bytes(range(2, 256)) + b"\x00", b"\xff" + bytes(range(2, 256)) + b"\x01\x01"),
    (bytes(range(3, 256)) + b"\x00\x01", b"\xfe" + bytes(range(3, 256)) + b"\x02\x01"),
]


@pytest.mark.parametrize(("data", "encoded"), COBS_VECTORS)
def test_cobs_matches_the_canonical_vectors(data: bytes, encoded: bytes) -> None:
    assert wire.cobs_encode(data) == encoded and wire.cobs_decode(encoded) == data


def test_a_full_254_byte_run_at_the_end() -> None:
    """The canonical form ends after the 0xFF block; ours adds an empty block (also valid COBS).
    Both decode to the same bytes, so either peer may send either."""
    assert wire.cobs_encode(SEQ_254) == b"\xff" + SEQ_254 + b"\x01"
    assert wire.cobs_encode(b"\x00" + SEQ_254) == b"\x01\xff" + SEQ_254 + b"\x01"
    assert (
        wire.cobs_decode(b"\xff" + SEQ_254)
        == wire.cobs_decode(b"\xff" + SEQ_254 + b"\x01")
        == SEQ_254
    )


def test_sequence_numbers_wrap_at_16_bits() -> None:
    for seq, on_wire in ((5, 5), (0xFFFF, 0xFFFF), (0x10000 + 5, 5)):
        decoded = FrameDecoder().feed(wire.encode_frame(Frame(MessageType.PING, seq, b"")))
        assert decoded[0].seq == on_wire


def test_the_decoder_takes_a_frame_of_exactly_max_frame_bytes() -> None:
    """max_frame counts decoded bytes (header + payload + CRC); one byte more is an oversize run."""
    max_frame = 600
    payload = b"\x07" * (max_frame - wire.MIN_FRAME)
    fits = wire.encode_frame(Frame(MessageType.LOG, 0, payload))
    decoder = FrameDecoder(max_frame=max_frame)
    assert [f.payload for f in decoder.feed(fits)] == [payload]
    assert decoder.stats.oversize == 0
    too_long = wire.encode_frame(Frame(MessageType.LOG, 0, payload + b"\x07" * 4))
    assert decoder.feed(too_long) == [] and decoder.stats.oversize == 1


def test_payload_errors_name_the_sizes() -> None:
    with pytest.raises(wire.ProtocolError, match=r"payload too short \(3 < 9 bytes\)"):
        wire.Load.unpack(b"\x01\x02\x03")
    with pytest.raises(wire.ProtocolError, match="truncated in model hash"):
        wire.HelloAck.unpack(b"\x01" + b"\x00" * 4 + b"\x00" + b"\xaa" * 3)
    with pytest.raises(wire.ProtocolError, match="string runs past"):
        wire.Error.unpack(b"\x02\x00\x05ab")
    assert wire.Error.unpack(b"\x03\x00") == wire.Error(3, "")


def test_messages_are_immutable_values() -> None:
    import dataclasses

    for message in (
        Frame(MessageType.PING, 1),
        wire.Hello(1, 1, 512),
        wire.Result(1, 0, 0, 0, 0, b""),
    ):
        with pytest.raises(dataclasses.FrozenInstanceError):
            message.seq = 2  # type: ignore[misc,union-attr]


def test_decoder_counts_frames_garbage_and_oversize_exactly() -> None:
    decoder = FrameDecoder(max_frame=253)  # 253 // 254 == 0: no block overhead in the bound
    good = wire.encode_frame(Frame(MessageType.PONG, 1, b"\x01\x02"))
    assert len(decoder.feed(good + good)) == 2 and decoder.stats.frames == 2
    decoder.feed(b"\x09\x01\x01\x01\x01\x00")  # a COBS block promising 8 bytes, cut at 4: dropped
    assert decoder.stats.garbage_bytes == 6 and decoder.stats.frames == 2
    run = b"\x55" * 256  # one byte over max_encoded (253 + 0 + 2)
    for start in range(0, len(run), 16):  # fed in pieces, as a UART delivers it
        decoder.feed(run[start : start + 16])
    assert decoder.stats.oversize == 1  # skipped to the delimiter, not re-counted per piece
    assert decoder.feed(b"\x00" + good)[0].seq == 1 and decoder.stats.frames == 3


def test_unpack_checks_the_end_of_the_field_not_its_start() -> None:
    with pytest.raises(wire.ProtocolError, match=r"\(7 < 8 bytes\)"):
        wire._unpack(wire.U32, b"\x00" * 7, 4)
    assert wire._unpack(wire.U32, b"\x00" * 4 + b"\x01\x00\x00\x00", 4) == (1,)


@pytest.mark.parametrize("firmware", ["", "a", "ab", "abc", "fw 1.2.3-rc4"])
def test_tensor_descriptors_parse_at_any_offset(firmware: str) -> None:
    tensors = (
        wire.TensorDesc(wire.DType.FLOAT32, (3, 5), 0.5, 7),
        wire.TensorDesc(wire.DType.INT16, (4,), 2.0, -1),
    )
    ack = wire.HelloAck(
        1,
        7,
        firmware,
        b"\x02" * 8,
        "rt" * len(firmware),
        0,
        512,
        2,
        3,
        115200,
        tensors[:1],
        tensors[1:],
    )
    assert wire.HelloAck.unpack(ack.pack()) == ack
    assert [t.nbytes for t in tensors] == [60, 8]


def test_strings_are_cut_at_255_bytes() -> None:
    error = wire.Error(6, "x" * 300)
    assert error.pack()[2] == 255 and wire.Error.unpack(error.pack()).detail == "x" * 255


def test_missing_ranges_pack_as_many_as_fit() -> None:
    ranges = [(0, 1), (5, 2), (9, 3)]
    assert wire.unpack_ranges(wire.pack_ranges(ranges, 24)) == ranges
    assert wire.unpack_ranges(wire.pack_ranges(ranges, 23)) == ranges[:2]  # 8 bytes each
    assert wire.pack_ranges(ranges, 16) == bytes.fromhex("00000000 01000000 05000000 02000000")
    assert wire.pack_ranges(ranges, 7) == b"" == wire.pack_ranges(ranges, -8)
    with pytest.raises(wire.ProtocolError, match="not a multiple of 8"):
        wire.unpack_ranges(b"\x00" * 12)
    assert wire.unpack_ranges(b"") == []


def test_headers_of_both_versions_are_checked() -> None:
    def body_of(frame: Frame) -> bytes:
        return wire.cobs_decode(wire.encode_frame(frame)[1:-1])[:-4]

    def with_crc(body: bytes) -> bytes:
        return body + zlib.crc32(body).to_bytes(4, "little")

    v2 = body_of(Frame(MessageType.PING, 3, b"abcd", session=(1 << 32) + 5))
    assert v2[3:7] == (5).to_bytes(4, "little") and v2[0] == wire.PROTOCOL_VERSION == 2
    assert wire.parse_frame(with_crc(v2)).session == 5
    with pytest.raises(wire.ProtocolError, match="length field"):
        wire.parse_frame(with_crc(v2 + b"x"))
    v1 = body_of(Frame(MessageType.PING, 3, b"abcd", version=1))
    assert wire.parse_frame(with_crc(v1)) == Frame(MessageType.PING, 3, b"abcd", version=1)
    with pytest.raises(wire.ProtocolError, match="length field"):
        wire.parse_frame(with_crc(v1 + b"x"))
    empty_v1 = body_of(Frame(MessageType.PING, 3, b"", version=1))
    short = bytes([2]) + empty_v1[1:]  # a v2 version byte on 7 bytes: too short for v2's header
    with pytest.raises(wire.ProtocolError, match="shorter than header"):
        wire.parse_frame(with_crc(short))
    with pytest.raises(wire.ProtocolError, match="shorter than header"):
        wire.parse_frame(with_crc(v1[:6]))


@pytest.mark.parametrize("payload_bytes", [0, 1, 100, 239])
def test_wire_overhead_is_what_a_short_frame_costs_on_the_line(payload_bytes: int) -> None:
    """Up to 254 decoded bytes a frame costs its payload + WIRE_OVERHEAD on the wire (header, CRC,
    one COBS code byte, two delimiters), zeros in the payload or not: the link sizes chunks with it."""
    for fill in (b"\x00", b"\x5a"):
        encoded = wire.encode_frame(
            Frame(MessageType.LOAD, 9, fill * payload_bytes, session=0x01020304)
        )
        assert len(encoded) == wire.WIRE_OVERHEAD + payload_bytes


@pytest.mark.parametrize("max_frame", [64, 253, 254, 255, 508, 509, 1024])
def test_the_decoder_bound_fits_the_largest_frame_of_any_limit(max_frame: int) -> None:
    """A frame of exactly max_frame decoded bytes with no zero (the most COBS code bytes) decodes;
    the buffer bound is the encoded size of that frame plus its leading delimiter's slack."""
    payload = b"\x07" * (max_frame - wire.MIN_FRAME)
    frame = wire.encode_frame(Frame(MessageType.LOG, 0, payload))
    decoder = FrameDecoder(max_frame=max_frame)
    assert [f.payload for f in decoder.feed(frame)] == [payload] and decoder.stats.oversize == 0
    assert decoder.max_encoded == max_frame + max_frame // 254 + 2
