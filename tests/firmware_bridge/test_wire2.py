"""edgekit-wire/2 against the emulator: sessions, a v1 device, noisy links and SET_BAUD recovery."""

from __future__ import annotations

import os
import threading
import tty
from pathlib import Path

import numpy as np
import pytest
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import agent as agent_module
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.agent import DeviceAgent
from edgekit.firmware_bridge.emulator import Emulator
from edgekit.firmware_bridge.link import HostLink
from edgekit.firmware_bridge.protocol import Frame, MessageType, ResultStatus
from edgekit.verify import VerifyOptions, run_verify

FAST = {"timeout": 0.15, "retries": 3, "show_progress": False}


def verify(run_dir: Path, device: str, **options) -> dict:
    return run_verify(run_dir, VerifyOptions(device=device, **{**FAST, **options}))


class CachingAsV1Allowed(DeviceAgent):
    """A firmware written from the v1 text: replies cached by (type, seq) only, kept across HELLOs."""

    def handle(self, frame: Frame) -> bytes | None:
        cache = self.__dict__.setdefault("v1_cache", {})
        key = (frame.type, frame.seq)
        if frame.type in (MessageType.LOAD, MessageType.INFER) and key in cache:
            return cache[key]
        reply = super().handle(frame)
        if reply is not None and frame.type in (MessageType.LOAD, MessageType.INFER):
            cache[key] = reply
        return reply


def test_a_device_caching_as_v1_allowed_cannot_return_stale_results(
    exported_run: Path, tmp_path: Path
) -> None:
    """Its replay carries the first run's session: the host never takes it, and names the bug."""
    X = np.load(exported_run / "data/X_test.npy")[:10]
    np.savez(tmp_path / "reversed.npz", inputs=X[::-1])
    with Emulator(exported_run) as emulator:
        emulator.agent.__class__ = CachingAsV1Allowed
        first = verify(exported_run, emulator.path, no_reset=True, limit=10)
        second = verify(exported_run, emulator.path, inputs=str(tmp_path / "reversed.npz"),
                        no_reset=True, limit=10)  # fmt: skip
    assert not first["partial"] and first["rows"]["device_vs_reference"]["max_lsb"] == 0
    assert second["partial"] and second["samples_done"] == 0  # no stale RESULT was accepted
    assert "replays replies cached in an earlier run" in second["error"], second["error"]
    assert "key the reply cache by (session, type, seq)" in second["error"]


def test_a_new_session_forgets_the_last_ones_buffers_and_replies(exported_run: Path) -> None:
    """Same seq, new session: the INFER runs again and finds no input, instead of a replay."""
    with Emulator(exported_run) as emulator:
        agent = emulator.agent
        size = agent.backend.inputs[0].nbytes

        def send(msg_type: MessageType, seq: int, payload: bytes, session: int) -> Frame:
            reply = agent.handle(Frame(msg_type, seq, payload, session=session))
            assert reply is not None
            return wire.FrameDecoder().feed(reply)[0]

        assert send(MessageType.HELLO, 1, wire.Hello().pack(), 7).session == 7
        assert (
            send(MessageType.LOAD, 2, wire.Load(0, 0, 0, bytes(size)).pack(), 7).type
            == MessageType.ACK
        )
        first = wire.Result.unpack(send(MessageType.INFER, 3, wire.Infer(0).pack(), 7).payload)
        assert first.status == ResultStatus.OK
        assert send(MessageType.INFER, 3, wire.Infer(0).pack(), 7).payload == first.pack()  # replay
        other = send(MessageType.INFER, 3, wire.Infer(0).pack(), 8)
        assert (
            other.type == MessageType.ERROR and other.session == 8
        )  # not this session's: HELLO first
        send(MessageType.HELLO, 1, wire.Hello().pack(), 8)
        fresh = send(MessageType.INFER, 3, wire.Infer(0).pack(), 8)
        result = wire.Result.unpack(fresh.payload)
        assert fresh.session == 8 and result.status == ResultStatus.INCOMPLETE
        assert wire.unpack_ranges(result.data) == [(0, size)]  # the whole input is missing


def test_incomplete_lists_exactly_the_missing_bytes(exported_run: Path) -> None:
    with Emulator(exported_run) as emulator:
        agent = emulator.agent
        size = agent.backend.inputs[0].nbytes
        agent.handle(Frame(MessageType.HELLO, 1, wire.Hello().pack(), session=5))
        for seq, (offset, length) in enumerate([(0, 10), (30, 5), (size - 4, 4)], start=2):
            agent.handle(
                Frame(
                    MessageType.LOAD, seq, wire.Load(0, 0, offset, bytes(length)).pack(), session=5
                )
            )
        reply = agent.handle(Frame(MessageType.INFER, 9, wire.Infer(0).pack(), session=5))
        result = wire.Result.unpack(wire.FrameDecoder().feed(reply)[0].payload)  # type: ignore[arg-type]
    assert result.status == ResultStatus.INCOMPLETE
    assert wire.unpack_ranges(result.data) == [(10, 20), (35, size - 4 - 35)]


def test_a_v1_device_gets_a_clear_protocol_version_error() -> None:
    """A v1 firmware drops v2 frames; the host's v1-framed probe makes it answer BAD_VERSION."""
    master, slave = os.openpty()
    tty.setraw(slave)
    stop = threading.Event()

    def v1_device() -> None:
        decoder = wire.FrameDecoder()
        while not stop.is_set():
            try:
                data = os.read(master, 4096)
            except OSError:
                return
            for frame in decoder.feed(data):
                if frame.version == 1 and frame.type == MessageType.HELLO:
                    error = wire.Error(wire.ErrorCode.BAD_VERSION, "device speaks version 1 only")
                    os.write(master, wire.encode_frame(
                        Frame(MessageType.ERROR, frame.seq, error.pack(), version=1)))  # fmt: skip

    thread = threading.Thread(target=v1_device, daemon=True)
    thread.start()
    try:
        link = HostLink(os.ttyname(slave), timeout=0.1, retries=2)
        with pytest.raises(
            DeviceError,
            match=r"speaks edgekit-wire/1, this host speaks edgekit-wire/2; update the firmware",
        ):
            link.hello()
        link.close()
    finally:
        stop.set()
        os.close(slave)
        os.close(master)
        thread.join(timeout=2)


def test_a_v2_device_drops_the_v1_probe_unanswered(exported_run: Path) -> None:
    with Emulator(exported_run) as emulator:
        probe = Frame(MessageType.HELLO, 0xFFFF, wire.Hello(2, 2).pack(), version=1)
        assert emulator.agent.handle(probe) is None and emulator.agent.foreign_frames == 1
        assert not emulator.agent.ready  # no session was opened by it


@pytest.mark.parametrize(
    "faults",
    ["bitflip=0.01,seed=5", "bitflip=0.002,drop=0.002,duplicate=0.002,garbage=0.002,seed=6"],
)
def test_noisy_links_account_for_every_sample_exactly_once(exported_run: Path, faults: str) -> None:
    """1 % byte flips, or 0.2 % each of flips, drops, duplicates and garbage, both directions."""
    seen: list[int] = []
    stream = HostLink.stream

    def counting(self: HostLink, samples, repeat: int = 1):
        for sample_id, result in stream(self, samples, repeat):
            seen.append(sample_id)
            yield sample_id, result

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(HostLink, "stream", counting)
        report = verify(exported_run, f"emu://?faults={faults}")
    assert not report["partial"], report.get("error")
    assert sorted(seen) == list(range(report["samples_total"]))  # each once
    assert (
        report["missing_sample_ids"] == [] and report["rows"]["device_vs_reference"]["max_lsb"] == 0
    )
    stats = report["link_stats"]
    assert stats["crc_errors"] > 0 and stats["incomplete"] > 0 and stats["resent_bytes"] > 0
    assert stats["chunk_bytes"] < wire.chunk_size(wire.DEFAULT_MAX_FRAME)  # frames shrank


def test_a_device_that_switched_without_its_ack_arriving_is_found_at_the_new_rate(
    exported_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def switch_silently(self: DeviceAgent, frame: Frame, baud: int) -> None:
        self.switch_baud(baud)  # the ACK was lost on the way

    monkeypatch.setattr(DeviceAgent, "set_baud", switch_silently)
    with Emulator(exported_run, baud=115200) as emulator:
        link = HostLink(emulator.path, baud=115200, timeout=0.1, retries=1)
        nonce = link.hello().boot_nonce
        link.set_baud(230400)
        assert link.baud == 230400 and emulator.throttle.baud == 230400
        assert link.ping() == nonce
        link.close()


def test_the_device_falls_back_when_the_host_never_speaks_at_the_new_rate(
    exported_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(agent_module, "BAUD_GRACE_S", 0.2)
    with Emulator(exported_run, baud=115200) as emulator:
        agent = emulator.agent
        agent.handle(Frame(MessageType.HELLO, 1, wire.Hello().pack(), session=3))
        fell_back = threading.Event()
        agent.baud_listeners.append(lambda baud: baud == 115200 and fell_back.set())
        agent.handle(Frame(MessageType.SET_BAUD, 2, wire.U32.pack(230400), session=3))
        assert emulator.throttle.baud == 230400
        assert fell_back.wait(5)  # no frame at the new rate: the grace time ends it
        assert emulator.throttle.baud == 115200 and agent.baud == 115200


def test_set_baud_refuses_rates_the_device_cannot_make(exported_run: Path) -> None:
    with Emulator(exported_run) as emulator:
        link = HostLink(emulator.path, timeout=0.3)
        link.hello()
        for rate in (300, 4_000_000):
            with pytest.raises(DeviceError, match=f"UNSUPPORTED baud {rate} outside 1200..3000000"):
                link.set_baud(rate)
        link.close()
