"""Fuzz the frame decoder with hypothesis: no crash, no hang, bounded buffer (>= 100k cases)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any


def run(folder: Path, cases: int = 100_000) -> dict[str, Any]:
    from edgekit.firmware_bridge import protocol as wire
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    valid = wire.encode_frame(wire.Frame(wire.MessageType.RESULT, 7, b"\x00\x01\x02" * 10))
    chunks = st.lists(
        st.one_of(st.binary(max_size=400), st.just(valid), st.just(b"\x00")), max_size=12
    )
    stats = {"cases": 0, "frames": 0, "max_buffer": 0}

    @settings(
        max_examples=cases,
        database=None,
        deadline=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(chunks)
    def case(parts: list[bytes]) -> None:
        decoder = wire.FrameDecoder(max_frame=256)
        for part in parts:
            stats["frames"] += len(decoder.feed(part))
            stats["max_buffer"] = max(stats["max_buffer"], len(decoder.buffer))
            assert len(decoder.buffer) <= decoder.max_encoded
        stats["cases"] += 1

    start = time.perf_counter()
    case()
    return {
        **stats,
        "seconds": time.perf_counter() - start,
        "buffer_bound": wire.FrameDecoder(256).max_encoded,
    }
