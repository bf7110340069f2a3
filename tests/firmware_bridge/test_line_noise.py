"""The seeded byte-level fault injector, and the chunk size the host picks for a given error rate."""

from __future__ import annotations

import os

import numpy as np
import pytest
from edgekit.errors import DeviceError
from edgekit.firmware_bridge.line_noise import LineNoise, NoisyStream, NoisyWire
from edgekit.firmware_bridge.link import ErrorRate, best_chunk

DATA = bytes(range(1, 256)) * 400  # 102,000 bytes without a zero


def test_each_fault_changes_the_stream_as_named() -> None:
    flipped = NoisyStream(LineNoise(flip=0.01), seed=1)(DATA)
    differ = np.frombuffer(flipped, np.uint8) ^ np.frombuffer(DATA, np.uint8)
    assert len(flipped) == len(DATA) and all(bin(d).count("1") == 1 for d in differ[differ != 0])
    dropped = NoisyStream(LineNoise(drop=0.01), seed=1)
    assert len(dropped(DATA)) == len(DATA) - dropped.counts["drop"] > 0
    doubled = NoisyStream(LineNoise(duplicate=0.01), seed=1)
    assert len(doubled(DATA)) == len(DATA) + doubled.counts["duplicate"] > len(DATA)
    garbage = NoisyStream(LineNoise(garbage=0.01), seed=1)
    out = garbage(DATA)
    assert len(out) == len(DATA) + garbage.counts["garbage"] and b"\x00" in out  # random bytes
    assert NoisyStream(LineNoise(), seed=1)(DATA) == DATA


@pytest.mark.parametrize("rate", [0.001, 0.01])
def test_faults_are_per_byte_at_the_given_rate(rate: float) -> None:
    stream = NoisyStream(LineNoise(flip=rate), seed=3)
    for start in range(0, len(DATA), 777):  # in pieces, as reads arrive
        stream(DATA[start : start + 777])
    expected = rate * len(DATA)
    assert abs(stream.counts["flip"] - expected) < 5 * expected**0.5  # five sigma


def test_the_same_seed_gives_the_same_faults() -> None:
    noise = LineNoise(flip=0.01, drop=0.01, duplicate=0.01, garbage=0.01)
    assert NoisyStream(noise, 7)(DATA) == NoisyStream(noise, 7)(DATA) != NoisyStream(noise, 8)(DATA)


def test_line_noise_parse_errors() -> None:
    assert LineNoise.parse("flip=0.01,garbage=0.002") == LineNoise(flip=0.01, garbage=0.002)
    with pytest.raises(DeviceError, match="unknown line fault 'lightning'"):
        LineNoise.parse("lightning=1")
    with pytest.raises(DeviceError, match="not a probability"):
        LineNoise.parse("drop=2")


def test_noisy_wire_joins_two_ptys() -> None:
    import time

    with NoisyWire(LineNoise(), baud=0) as wire:
        device = os.open(wire.device_path, os.O_RDWR | os.O_NOCTTY)
        host = os.open(wire.host_path, os.O_RDWR | os.O_NOCTTY)
        try:
            time.sleep(0.2)  # a quiet line first: the pumps keep waiting
            os.write(host, b"ping\x00")
            assert _read(device, 5) == b"ping\x00"
            os.write(device, b"pong")
            assert _read(host, 4) == b"pong"
        finally:
            os.close(device)
            os.close(host)


def _read(fd: int, size: int) -> bytes:
    import select

    data = b""
    while len(data) < size and select.select([fd], [], [], 2)[0]:
        data += os.read(fd, size - len(data))
    return data


def test_best_chunk_is_the_goodput_optimum() -> None:
    """payload / bytes sent = c / (c + h) * (1 - e) ** (c + h) is largest at the chosen c."""
    from edgekit.firmware_bridge import protocol as wire

    h = wire.WIRE_OVERHEAD + wire.Load.OVERHEAD
    assert best_chunk(0.0, 1000) == 1000  # a clean link sends the largest frames

    def goodput(c: int, e: float) -> float:
        return c / (c + h) * (1 - e) ** (c + h)

    for e in (0.0005, 0.001, 0.01, 0.05):
        chunk = best_chunk(e, 1000)
        assert goodput(chunk, e) >= max(goodput(c, e) for c in range(16, 1001)) * 0.999
    assert best_chunk(0.01, 1000) < best_chunk(0.001, 1000) < 1000
    assert best_chunk(0.5, 1000) == 16 and best_chunk(0.001, 100) == 100


def test_error_rate_estimate_follows_the_losses() -> None:
    rate = ErrorRate()
    assert rate.per_byte == 0.0
    for i in range(400):  # frames of 100 bytes, every fourth lost: (1 - e) ** 100 = 0.75
        rate.record(100, i % 4 == 0)
    # within the bias of the decaying memory (about 33 frames) and its one imagined good frame
    assert rate.per_byte == pytest.approx(1 - 0.75 ** (1 / 100), rel=0.15)
    for _ in range(400):
        rate.record(100, False)
    assert rate.per_byte < 1e-6  # a link that became clean is trusted again


def test_certain_faults_hit_every_byte_in_place() -> None:
    """At probability 1 each fault is exact: where it acts and what it does."""
    data = bytes(range(1, 200))
    flip = NoisyStream(LineNoise(flip=1), seed=2)
    flipped = np.frombuffer(flip(data), np.uint8) ^ np.frombuffer(data, np.uint8)
    assert [bin(d).count("1") for d in flipped] == [1] * len(data)
    assert flip.counts == {"flip": len(data), "drop": 0, "duplicate": 0, "garbage": 0}
    assert NoisyStream(LineNoise(drop=1), seed=2)(data) == b""
    assert NoisyStream(LineNoise(duplicate=1), seed=2)(data) == bytes(
        b for b in data for _ in (0, 1)
    )
    preceded = NoisyStream(LineNoise(garbage=1), seed=2)(data)
    assert len(preceded) == 2 * len(data) and preceded[1::2] == data  # before each victim
    assert len(NoisyStream(LineNoise(drop=1, garbage=1), seed=2)(data)) == len(data)
    twice = NoisyStream(LineNoise(duplicate=1, garbage=1), seed=2)(data)
    assert twice[1::3] == data and twice[2::3] == data  # garbage, then the byte and its copy


def test_no_fault_and_no_data_leave_the_stream_and_the_counts_alone() -> None:
    quiet = NoisyStream(LineNoise(), seed=1)
    assert quiet(DATA) is DATA and quiet.counts == {}
    noisy = NoisyStream(LineNoise(flip=0.5), seed=1)
    assert noisy(b"") == b"" and noisy.counts == {}
    rare = NoisyStream(LineNoise(drop=1e-9), seed=1)
    assert rare(DATA[:100]) == DATA[:100] and rare.counts == {}


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("flip=often", "line fault flip='often' is not a number"),
        ("drop=-0.1", "line fault drop=-0.1 is not a probability in [0, 1]"),
        ("garbage=1.5", "line fault garbage=1.5 is not a probability in [0, 1]"),
        ("noise=0.1", "unknown line fault 'noise'; use flip, drop, duplicate, garbage"),
    ],
)
def test_a_bad_line_fault_is_one_clear_error(spec: str, message: str) -> None:
    with pytest.raises(DeviceError) as refused:
        LineNoise.parse(spec)
    assert str(refused.value) == message


def test_a_clean_line_is_the_default_and_a_fixed_one() -> None:
    import dataclasses

    assert dataclasses.astuple(LineNoise()) == (0.0, 0.0, 0.0, 0.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        LineNoise().flip = 0.5  # type: ignore[misc]


def test_line_noise_bounds_and_empty_items() -> None:
    assert LineNoise.parse("") == LineNoise()
    assert LineNoise.parse("flip=0,,drop=1,") == LineNoise(flip=0.0, drop=1.0)


def stopped_wire(baud: int = 0) -> NoisyWire:
    """A wire whose threads are gone, open again: the test runs its pump or writer by hand."""
    wire = NoisyWire(LineNoise(), baud=baud)
    wire.close()
    wire.closed.clear()
    return wire


@pytest.mark.parametrize(
    ("write_seconds", "expected"),
    [(0.0, [640 / 9600] * 3 + [80 / 9600]), (1.0, [640 / 9600, 0, 0, 0])],  # slow writes: no waits
)
def test_the_wire_paces_pieces_at_ten_bits_a_byte(
    monkeypatch: pytest.MonkeyPatch, write_seconds: float, expected: list[float]
) -> None:
    """8N1: each byte takes 10 bit times; the pump sleeps each 64-byte piece's share on a clock
    that never runs behind real time. A fake clock makes the check exact."""
    from types import SimpleNamespace

    from edgekit.firmware_bridge import line_noise

    wire = stopped_wire(baud=9600)
    now, slept, pieces = [5.0], [], []

    def sleep(seconds: float) -> None:
        assert seconds >= 0  # as time.sleep requires
        slept.append(seconds)
        now[0] += seconds

    def write(fd: int, data: bytes) -> None:
        now[0] += write_seconds
        pieces.append(len(data))
        if sum(pieces) == 200:
            wire.closed.set()

    monkeypatch.setattr(
        line_noise, "time", SimpleNamespace(perf_counter=lambda: now[0], sleep=sleep)
    )
    monkeypatch.setattr(wire, "_write", write)

    def arrive_later(data: bytes) -> bytes:
        now[0] = 7.0  # the bytes come after an idle while: no burst to catch up on it
        return data

    source, feed = os.pipe()
    try:
        os.write(feed, bytes(200))
        wire._pump(source, -1, arrive_later)  # type: ignore[arg-type]
    finally:
        os.close(source)
        os.close(feed)
    assert pieces == [64, 64, 64, 8]
    assert slept == pytest.approx(expected)


def test_combined_certain_faults_and_their_counts() -> None:
    data = bytes(range(1, 200))
    gone = NoisyStream(LineNoise(flip=1, drop=1), seed=4)
    assert gone(data) == b"" and gone.counts["flip"] == gone.counts["drop"] == len(data)
    resent = NoisyStream(LineNoise(drop=1, duplicate=1), seed=4)  # lost, then its copy arrives
    assert resent(data) == data
    assert resent.counts == {"flip": 0, "drop": len(data), "duplicate": len(data), "garbage": 0}


def test_flips_reach_every_bit_and_garbage_every_byte_value_evenly() -> None:
    flipped = NoisyStream(LineNoise(flip=1), seed=5)(DATA[:2000])
    changed = np.frombuffer(flipped, np.uint8) ^ np.frombuffer(DATA[:2000], np.uint8)
    assert sorted(set(changed.tolist())) == [1, 2, 4, 8, 16, 32, 64, 128]
    garbage = np.frombuffer(NoisyStream(LineNoise(garbage=1), seed=5)(DATA), np.uint8)[0::2]
    counts = np.bincount(garbage, minlength=256)
    expected = len(DATA) / 256  # ~398 each; a value twice as likely would sit ~20 sigma off
    assert len(counts) == 256 and np.all(np.abs(counts - expected) < 6 * expected**0.5)


def test_the_wire_is_unpaced_by_default_and_seeds_each_direction() -> None:
    """The host-to-device stream takes seed 2s, the way back 2s + 1: a run is replayed by its seed."""
    noise = LineNoise(flip=0.05, drop=0.05, duplicate=0.05, garbage=0.05)
    with NoisyWire(noise) as default:
        assert default.to_device(DATA[:500]) == NoisyStream(noise, 0)(DATA[:500])
    with NoisyWire(noise, seed=3) as wire:
        assert wire.baud == 0 and all(thread.daemon for thread in wire.threads)
        # a write nobody reads must not block the pump: its one-second rule needs that
        assert not any(os.get_blocking(fd) for fd in wire.fds[0::2])
        assert wire.to_device(DATA[:500]) == NoisyStream(noise, 6)(DATA[:500])
        assert wire.to_host(DATA[:500]) == NoisyStream(noise, 7)(DATA[:500])
    assert not any(thread.is_alive() for thread in wire.threads)
    for fd in wire.fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_bytes_nobody_reads_for_a_second_are_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    """A full line (here a pipe nobody drains) costs the pump one second, then the piece is lost."""
    from types import SimpleNamespace

    from edgekit.firmware_bridge import line_noise

    now = [0.0]

    def clock() -> float:
        now[0] += 0.3
        assert now[0] < 10, "the write never gave up"
        return now[0]

    wire = stopped_wire()
    tries = []
    monkeypatch.setattr(line_noise, "time", SimpleNamespace(perf_counter=clock))
    monkeypatch.setattr(
        line_noise,
        "select",
        SimpleNamespace(select=lambda *args: tries.append(args) or ([], [], [])),
    )
    drain, full = os.pipe()
    try:
        os.set_blocking(full, False)
        with pytest.raises(BlockingIOError):
            while True:
                os.write(full, bytes(65536))
        wire._write(full, b"lost")
    finally:
        os.close(drain)
        os.close(full)
    assert len(tries) == 3  # the fake clock moves 0.3 s a look: three tries within the second


def test_a_failed_read_is_tried_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """A pty may report data and then have none (EAGAIN): the pump reads again, it does not stop."""
    from types import SimpleNamespace

    from edgekit.firmware_bridge import line_noise

    wire = stopped_wire()
    failures, written = [BlockingIOError(11, "try again")], []

    def read(fd: int, size: int) -> bytes:
        if failures:
            raise failures.pop()
        return os.read(fd, size)

    def write(fd: int, data: bytes) -> None:
        written.append(data)
        wire.closed.set()

    monkeypatch.setattr(line_noise, "os", SimpleNamespace(read=read))
    monkeypatch.setattr(wire, "_write", write)
    source, feed = os.pipe()
    try:
        os.write(feed, b"late")
        wire._pump(source, -1, NoisyStream(LineNoise(), seed=0))
    finally:
        os.close(source)
        os.close(feed)
    assert written == [b"late"] and failures == []
