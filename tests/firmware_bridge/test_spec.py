"""protocol.py against docs/PROTOCOL.md: every table of the spec, parsed, equals the code's constants."""

from __future__ import annotations

import re
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
    assert wire.HEADER.format.lstrip("<") == "BBBHH"  # version, type, flags, seq u16, length u16
    statuses = dict(re.findall(r"(\d+) (OK|INCOMPLETE)", SPEC))
    assert {int(k): v for k, v in statuses.items()} == members(wire.ResultStatus)


def test_the_table_parser_sees_a_changed_spec() -> None:
    """A parser that passed on anything would hide drift: a renamed or added row must show."""
    changed = SPEC.replace("| 0x11 | INFER |", "| 0x11 | RUN |").replace(
        "| 7 | UNSUPPORTED |", "| 7 | UNSUPPORTED | x |\n| 8 | BUSY |"
    )
    assert table("type", changed)[0x11] == "RUN" and table("type", changed) != members(
        wire.MessageType
    )
    assert table("code", changed)[8] == "BUSY"
