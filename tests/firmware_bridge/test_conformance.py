"""`edgekit device conformance`: passes on a correct device, names the rule a broken one breaks."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from click.testing import CliRunner
from edgekit.cli import cli
from edgekit.errors import GateError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.agent import DeviceAgent
from edgekit.firmware_bridge.conformance import CHECKS, run_conformance
from edgekit.firmware_bridge.emulator import Emulator
from edgekit.firmware_bridge.protocol import Frame, MessageType

from .test_wire2 import CachingAsV1Allowed


def test_the_emulator_passes_every_check_and_the_junit_file_says_so(
    exported_run: Path, tmp_path: Path
) -> None:
    junit = tmp_path / "conformance.xml"
    result = CliRunner().invoke(cli, ["device", "conformance", "--device", f"emu://?run={exported_run}",
                                      "--timeout", "0.5", "--junit", str(junit)])  # fmt: skip
    assert result.exit_code == 0, result.output
    assert [line.split()[1] for line in result.output.splitlines()[:-1]] == [n for n, _ in CHECKS]
    assert all(line.startswith("PASS") for line in result.output.splitlines()[:-1])
    text = junit.read_text()
    assert f'tests="{len(CHECKS)}" failures="0"' in text and text.count("<testcase") == len(CHECKS)


class EmptyIncomplete(DeviceAgent):
    """INCOMPLETE without the missing ranges, as v1 allowed."""

    def handle(self, frame: Frame) -> bytes | None:
        reply = super().handle(frame)
        if reply and frame.type == MessageType.INFER:
            answer = wire.FrameDecoder().feed(reply)[0]
            result = wire.Result.unpack(answer.payload)
            if result.status == wire.ResultStatus.INCOMPLETE:
                empty = wire.Result(result.sample_id, result.status, 0, 0, 0, b"")
                return wire.encode_frame(
                    Frame(answer.type, answer.seq, empty.pack(), session=answer.session)
                )
        return reply


class OutOfOrder(DeviceAgent):
    """Answers PING first, ahead of requests received before it (a firmware handling PING in an ISR)."""

    def serve(self) -> None:
        while not self.stop.is_set():
            replies = [(f.type, self.handle(f)) for f in self.decoder.feed(self.port.read(0.02))]
            for _, reply in sorted(replies, key=lambda r: r[0] != MessageType.PING):
                if reply is not None:
                    self.send(reply)


@pytest.mark.parametrize(
    ("agent", "failing", "named"),
    [
        (CachingAsV1Allowed, {"sessions"}, "replayed from an earlier session"),
        (EmptyIncomplete, {"incomplete_ranges"}, "INCOMPLETE lists []"),
        (OutOfOrder, {"in_order"}, "replies in the order"),
    ],
)
def test_a_broken_device_fails_exactly_the_check_of_its_bug(
    exported_run: Path, agent: type, failing: set[str], named: str
) -> None:
    emulator = Emulator(exported_run)
    emulator.agent.__class__ = agent
    emulator.thread = threading.Thread(target=emulator.agent.serve, daemon=True)  # its own serve
    with emulator:
        outcomes = run_conformance(emulator.path, timeout=0.3)
    assert {o.name for o in outcomes if not o.passed} == failing, outcomes
    assert named in next(o.detail for o in outcomes if not o.passed)


def test_a_device_that_never_answers_fails_every_check_without_a_traceback(tmp_path: Path) -> None:
    import os

    master, slave = os.openpty()
    try:
        result = CliRunner().invoke(cli, ["device", "conformance", "--device", os.ttyname(slave),
                                          "--timeout", "0.05"])  # fmt: skip
    finally:
        os.close(master)
        os.close(slave)
    error = result.exception  # `edgekit` prints it on one line and exits with its exit code
    assert isinstance(error, GateError) and error.exit_code == 6
    assert f"{len(CHECKS)} of {len(CHECKS)} conformance checks failed" in str(error)
    assert "no reply to HELLO" in result.output and "Traceback" not in result.output
