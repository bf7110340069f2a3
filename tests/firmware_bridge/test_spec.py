"""protocol.py against docs/PROTOCOL.md: every table of the spec, parsed, equals the code's constants."""

from __future__ import annotations

import re
import struct
from pathlib import Path

from edgekit.firmware_bridge import protocol as wire

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "PROTOCOL.md").read_text()


def table(first_header: str, spec: str = SPEC) -> dict[int, str]:
    """`value -> name` from the markdown table whose header row starts with `| first_header |`."""
    lines = spec.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows[int(cells[0], 0)] = cells[1]
    return rows


def members(enum: type) -> dict[int, str]:
    return {int(member): member.name for member in enum}  # type: ignore[attr-defined]


def test_message_types_match_the_spec() -> None:
    assert table("type") == members(wire.MessageType)


def test_error_codes_match_the_spec() -> None:
    assert table("code") == members(wire.ErrorCode)


def test_flags_match_the_spec() -> None:
    assert table("bit") == members(wire.Flags)


def test_dtypes_match_the_spec() -> None:
    line = next(line for line in SPEC.splitlines() if line.startswith("dtype:"))
    spec = {int(value): name for value, name in re.findall(r"(\d+) (\w+)", line.split(";")[0])}
    assert spec == {value: name.lower() for value, name in members(wire.DType).items()}
    assert set(wire.DTYPE_NUMPY) == set(wire.DType) == set(wire.DTYPE_SIZE)


def test_header_and_version_match_the_spec() -> None:
    assert f"version u8 (={wire.PROTOCOL_VERSION})" in SPEC
    assert wire.HEADER.format.lstrip("<") == "BBBIHH"  # version type flags session seq length
    statuses = re.findall(r"RESULT, status (\w+) \((\d+)\)", SPEC)
    assert {int(k): v for v, k in statuses} == members(wire.ResultStatus)


def test_the_table_parser_sees_a_changed_spec() -> None:
    """A parser that passed on anything would hide drift: a renamed or added row must show."""
    changed = SPEC.replace("| 0x11 | INFER |", "| 0x11 | RUN |").replace(
        "| 7 | UNSUPPORTED |", "| 7 | UNSUPPORTED | x |\n| 8 | BUSY |"
    )
    assert table("type", changed)[0x11] == "RUN" and table("type", changed) != members(
        wire.MessageType
    )
    assert table("code", changed)[8] == "BUSY"


def test_header_fields_match_the_spec() -> None:
    """The header table's offsets and sizes are the struct's."""
    lines = SPEC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("| offset |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        rows.append((int(cells[0]), cells[1], int(cells[2])))
    sizes = [struct.calcsize(code) for code in wire.HEADER.format.lstrip("<")]
    offsets = [sum(sizes[:i]) for i in range(len(sizes))]
    assert [(o, s) for o, _, s in rows] == list(zip(offsets, sizes, strict=True))
    assert [name for _, name, _ in rows] == ["version", "type", "flags", "session", "seq", "length"]
    assert f"header ({wire.HEADER.size} B)" in SPEC and f"size − {wire.MIN_FRAME}" in SPEC


def test_log_levels_match_the_spec() -> None:
    assert table("level") == members(wire.LogLevel)


# Every vector of §9, as protocol.py builds it: caption -> frame.
SESSION = 0x1234ABCD
_ACK = wire.HelloAck(
    2, 0x12345678, "fw1", bytes.fromhex("9f80431e262da20a"), "ort", 0, 1024, 4, 8, 3_000_000,
    (wire.TensorDesc(wire.DType.INT8, (6, 2, 50), 0.125, 0),),
    (wire.TensorDesc(wire.DType.INT8, (4,), 0.0625, -3),),
)  # fmt: skip
T = wire.MessageType
VECTORS = {
    "HELLO": wire.Frame(T.HELLO, 1, wire.Hello(2, 2, 1024).pack(), session=SESSION),
    "HELLO_ACK": wire.Frame(T.HELLO_ACK, 1, _ACK.pack(), session=SESSION),
    "SET_BAUD": wire.Frame(T.SET_BAUD, 2, wire.U32.pack(115200), session=SESSION),
    "ACK": wire.Frame(T.ACK, 2, b"", session=SESSION),
    "LOAD": wire.Frame(T.LOAD, 3, wire.Load(7, 0, 0, bytes.fromhex("0100ff02")).pack(), session=SESSION),
    "ACK (LOAD)": wire.Frame(T.ACK, 3, wire.U32.pack(7), session=SESSION),
    "INFER": wire.Frame(T.INFER, 4, wire.Infer(7, 1, 0).pack(), session=SESSION),
    "RESULT": wire.Frame(
        T.RESULT, 4, wire.Result(7, 0, 12800, 128, 0, bytes.fromhex("10f0007f")).pack(), session=SESSION
    ),
    "RESULT (INCOMPLETE)": wire.Frame(
        T.RESULT, 5, wire.Result(8, 1, 0, 0, 0, wire.pack_ranges([(0, 200), (400, 200)], 64)).pack(),
        session=SESSION,
    ),
    "LOG": wire.Frame(T.LOG, 0, wire.Log(1, "boot ok").pack(), session=SESSION),
    "ERROR": wire.Frame(T.ERROR, 6, wire.Error(2, "send HELLO first").pack(), session=SESSION),
    "PING": wire.Frame(T.PING, 7, wire.U32.pack(0xC0FFEE), session=SESSION),
    "PONG": wire.Frame(T.PONG, 7, wire.PONG.pack(0xC0FFEE, 0x12345678), session=SESSION),
    "RESET": wire.Frame(T.RESET, 8, b"", session=SESSION),
    "HELLO (v1 probe)": wire.Frame(T.HELLO, 0xFFFF, wire.Hello(2, 2, 1024).pack(), version=1),
}  # fmt: skip


def vectors(spec: str = SPEC) -> dict[str, tuple[bytes, bytes]]:
    """`caption name -> (decoded frame, wire bytes)` from §9's blocks."""
    found = {}
    pattern = r"\*\*([A-Z_]+(?: \([^)]*\))?) — [^\n]*\*\*\n```\nframe: (.*?)\nwire: (.*?)\n```"
    for name, frame_hex, wire_hex in re.findall(pattern, spec, re.S):
        found[name] = (
            bytes.fromhex(" ".join(frame_hex.split())),
            bytes.fromhex(" ".join(wire_hex.split())),
        )
    return found


def test_every_message_type_has_a_vector() -> None:
    assert {frame.type for frame in VECTORS.values()} == set(wire.MessageType)
    assert set(vectors()) == set(VECTORS)


def test_the_vectors_are_what_protocol_py_sends_and_reads() -> None:
    for name, (decoded, on_wire) in vectors().items():
        expected = VECTORS[name]
        assert wire.encode_frame(expected) == on_wire, name
        assert wire.cobs_decode(on_wire[1:-1]) == decoded, name
        assert wire.FrameDecoder().feed(on_wire) == [expected], name
    frame = wire.FrameDecoder().feed(vectors()["HELLO_ACK"][1])[0]
    assert wire.HelloAck.unpack(frame.payload) == _ACK
    incomplete = wire.Result.unpack(
        wire.FrameDecoder().feed(vectors()["RESULT (INCOMPLETE)"][1])[0].payload
    )
    assert wire.unpack_ranges(incomplete.data) == [(0, 200), (400, 200)]


def test_a_changed_vector_is_seen() -> None:
    """One wrong byte in the doc must fail the check above."""
    changed = SPEC.replace("frame: 02 30 00 cd ab 34 12 07 00", "frame: 02 30 00 cd ab 34 12 08 00")
    decoded, on_wire = vectors(changed)["PING"]
    assert wire.cobs_decode(on_wire[1:-1]) != decoded
