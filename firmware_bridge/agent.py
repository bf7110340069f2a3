"""The device side of edgekit-wire/2: an agent that runs a model for the host.

It runs on a Linux board (`edgekit device serve --port /dev/ttyGS0 ...`) or, in tests and demos, as
the emulator behind a pseudo-terminal. Replies are cached by (session, type, seq) so a retransmitted
request is answered again without running twice; a HELLO starts a new session and forgets the
last one.
"""

from __future__ import annotations

import random
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
from edgekit.errors import DeviceError
from edgekit.firmware_bridge import protocol as wire
from edgekit.firmware_bridge.contract import model_descriptors, model_file, model_hash
from edgekit.firmware_bridge.ports import BytePort
from edgekit.firmware_bridge.protocol import (
    DTYPE_NUMPY,
    ErrorCode,
    Frame,
    MessageType,
    ResultStatus,
    TensorDesc,
)

if TYPE_CHECKING:
    pass

FIRMWARE = "edgekit-agent 0.2"
# replies kept for retransmissions; an older request is executed again (idempotent)
REPLY_CACHE = 64
SAMPLE_BUFFERS = 8  # advertised in HELLO_ACK: samples held partly loaded at once
MIN_BAUD = 1200
BAUD_GRACE_S = 2.0  # after SET_BAUD, revert to the old rate if no valid frame arrives in this time


def missing_ranges(received: np.ndarray) -> list[tuple[int, int]]:
    """`(offset, length)` of every run of bytes not yet received, in order."""
    edges = np.diff(np.concatenate(([0], (~received).astype(np.int8), [0])))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b - a)) for a, b in zip(starts, ends, strict=True)]


# ----------------------------------------------------------------------------- backends
@dataclass
class Backend:
    """A model the agent can run: its hash, tensor descriptors and an int8-in, int8-out function."""

    name: str
    model_hash: bytes
    inputs: tuple[TensorDesc, ...]
    outputs: tuple[TensorDesc, ...]
    run: Callable[[np.ndarray], np.ndarray]


def load_backend(run_dir: str | Path, name: str = "onnxruntime") -> Backend:
    """`onnxruntime` runs the int8 QDQ export; `int-reference` the integer-only reference of the same file."""
    from edgekit.onnx_io import OnnxRunner, int8_input_variant, load_onnx
    from edgekit.quantize.integer_reference import IntegerReference

    path = model_file(run_dir)
    reference = IntegerReference.from_onnx(path)
    inputs, outputs = model_descriptors(reference)
    if name == "int-reference":

        def run(q: np.ndarray) -> np.ndarray:
            return reference.run_quantized(q.astype(np.int64)[None]).logits_q[0].astype(np.int8)

    elif name == "onnxruntime":
        # the graph from its int8 input on: the window arrives quantized (and dithered) already
        runner = OnnxRunner(int8_input_variant(load_onnx(path)))

        def run(q: np.ndarray) -> np.ndarray:
            logits = runner.run_window(q.astype(np.int8))["logits"]
            return reference.logits_tensor.quantize(logits).astype(np.int8)

    else:
        raise DeviceError(f"unknown backend '{name}'; use onnxruntime or int-reference")
    return Backend(name, model_hash(path), inputs, outputs, run)


class FaultHooks(Protocol):
    """What a fault injector may do to the agent (emulator.Faults): the line's bytes either way, the
    reported model hash, results, resets and malformed replies. The real device has none."""

    def corrupt_incoming(self, data: bytes) -> bytes: ...
    def corrupt_outgoing(self, data: bytes) -> bytes: ...
    def oversize(self) -> bytes: ...
    def model_hash(self, real: bytes) -> bytes: ...
    def on_result(self, out: np.ndarray, micros: int) -> tuple[np.ndarray, int]: ...
    def should_reset(self, inferences: int) -> bool: ...
    def boot_banner(self) -> bytes: ...
    def malformed_reply(self, request: Frame, result: wire.Result) -> bytes | None: ...


# ----------------------------------------------------------------------------- agent
class DeviceAgent:
    """Serves edgekit-wire/2 on a byte port until `stop` is set."""

    def __init__(
        self,
        backend: Backend,
        port: BytePort,
        max_frame: int = wire.DEFAULT_MAX_FRAME,
        credits: int = 4,
        max_baud: int = 3_000_000,
        faults: FaultHooks | None = None,
        seed: int = 0,
        baud: int = 0,
    ) -> None:
        self.backend, self.port, self.max_frame, self.credits, self.max_baud = (
            backend,
            port,
            max_frame,
            credits,
            max_baud,
        )
        self.faults = faults
        self.random = random.Random(seed)
        self.stop = threading.Event()
        self.baud_listeners: list[Callable[[int], None]] = []
        self.inferences = 0
        self.foreign_frames = 0  # frames of another protocol version, dropped
        self.baud = baud  # the current rate when known (0: unknown, no fallback after SET_BAUD)
        self.boot()

    def boot(self) -> None:
        self.nonce = self.random.getrandbits(32)
        self.ready = False
        self.session = 0
        self.frame_limit = self.max_frame
        self.baud_fallback: tuple[int, float] | None = None
        self.decoder = wire.FrameDecoder(self.max_frame)
        self.cache: OrderedDict[tuple[int, int, int], bytes] = OrderedDict()  # (session, type, seq)
        self.buffers: OrderedDict[int, tuple[bytearray, np.ndarray]] = OrderedDict()

    def serve(self) -> None:
        while not self.stop.is_set():
            if self.baud_fallback and time.monotonic() > self.baud_fallback[1]:
                self.switch_baud(self.baud_fallback[0])  # the host never spoke at the new rate
                self.baud_fallback = None
            data = self.port.read(0.02)
            if self.faults is not None:
                data = self.faults.corrupt_incoming(data)
            for frame in self.decoder.feed(data):
                reply = self.handle(frame)
                if reply is not None:
                    self.send(reply)

    def send(self, encoded: bytes) -> None:
        if self.faults is not None:
            encoded = self.faults.oversize() + self.faults.corrupt_outgoing(encoded)
        self.port.write(encoded)

    def handle(self, frame: Frame) -> bytes | None:
        if frame.version != wire.PROTOCOL_VERSION:  # v1 or a later version: dropped, not answered
            self.foreign_frames += 1
            return None
        self.baud_fallback = None  # a valid frame at the new rate: keep it
        if frame.type == MessageType.PING:  # any state and session, never cached
            token = wire.U32.unpack_from(frame.payload)[0] if len(frame.payload) >= 4 else 0
            return self.reply(
                frame, MessageType.PONG, wire.PONG.pack(token, self.nonce), cache=False
            )
        if frame.type == MessageType.RESET:  # any state: ACK, then reboot
            self.send(self.reply(frame, MessageType.ACK, b"", cache=False))
            self.boot()
            return None
        if frame.type == MessageType.HELLO:  # a new session: never replayed, forgets the last one
            return self.hello(frame)
        if not self.ready or frame.session != self.session:
            return self.error(frame, ErrorCode.NEED_HELLO, "send HELLO first")
        key = (frame.session, frame.type, frame.seq)
        if key in self.cache:  # a retransmission: replay, never run twice
            return self.cache[key]
        try:
            if frame.type == MessageType.LOAD:
                return self.load(frame, wire.Load.unpack(frame.payload))
            if frame.type == MessageType.INFER:
                return self.infer(frame, wire.Infer.unpack(frame.payload))
            if frame.type == MessageType.SET_BAUD:
                return self.set_baud(frame, wire.U32.unpack_from(frame.payload)[0])
            return self.error(frame, ErrorCode.UNSUPPORTED, f"message type {frame.type}")
        except (wire.ProtocolError, ValueError, IndexError) as err:
            return self.error(frame, ErrorCode.BAD_LENGTH, str(err))

    def reply(self, request: Frame, msg_type: int, payload: bytes, cache: bool = True) -> bytes:
        encoded = wire.encode_frame(Frame(msg_type, request.seq, payload, session=request.session))
        if cache:
            self.cache[(request.session, request.type, request.seq)] = encoded
            while len(self.cache) > REPLY_CACHE:
                self.cache.popitem(last=False)
        return encoded

    def error(self, request: Frame, code: ErrorCode, detail: str) -> bytes:
        return self.reply(
            request,
            MessageType.ERROR,
            wire.Error(code, detail).pack(),
            cache=code != ErrorCode.NEED_HELLO and request.type != MessageType.HELLO,
        )

    def hello(self, frame: Frame) -> bytes:
        self.cache.clear()
        self.buffers.clear()
        self.ready = False
        try:
            hello = wire.Hello.unpack(frame.payload)
        except wire.ProtocolError as err:
            return self.error(frame, ErrorCode.BAD_LENGTH, str(err))
        if not hello.proto_min <= wire.PROTOCOL_VERSION <= hello.proto_max:
            return self.error(
                frame, ErrorCode.BAD_VERSION, f"device speaks version {wire.PROTOCOL_VERSION} only"
            )
        self.ready, self.session = True, frame.session
        self.frame_limit = max(wire.MIN_LEGAL_FRAME, min(self.max_frame, hello.host_max_frame))
        model_id = (
            self.faults.model_hash(self.backend.model_hash)
            if self.faults is not None
            else self.backend.model_hash
        )
        ack = wire.HelloAck(
            wire.PROTOCOL_VERSION,
            self.nonce,
            FIRMWARE,
            model_id,
            self.backend.name,
            0,
            self.frame_limit,
            self.credits,
            SAMPLE_BUFFERS,
            self.max_baud,
            self.backend.inputs,
            self.backend.outputs,
        ).pack()
        return self.reply(frame, MessageType.HELLO_ACK, ack, cache=False)

    def set_baud(self, frame: Frame, baud: int) -> bytes | None:
        if not MIN_BAUD <= baud <= self.max_baud:
            return self.error(
                frame, ErrorCode.UNSUPPORTED, f"baud {baud} outside {MIN_BAUD}..{self.max_baud}"
            )
        self.send(self.reply(frame, MessageType.ACK, b""))
        if self.baud:  # back to the old rate if the host never speaks at the new one
            self.baud_fallback = (self.baud, time.monotonic() + BAUD_GRACE_S)
        self.switch_baud(baud)
        return None

    def switch_baud(self, baud: int) -> None:
        self.baud = baud
        for listener in self.baud_listeners:
            listener(baud)

    def load(self, frame: Frame, load: wire.Load) -> bytes:
        if load.tensor >= len(self.backend.inputs):
            return self.error(frame, ErrorCode.BAD_TENSOR, f"tensor {load.tensor}")
        size = self.backend.inputs[load.tensor].nbytes
        if load.offset + len(load.data) > size:
            return self.error(
                frame, ErrorCode.BAD_OFFSET, f"{load.offset}+{len(load.data)} > {size}"
            )
        if load.sample_id not in self.buffers:
            if len(self.buffers) >= SAMPLE_BUFFERS:  # a complete sample's buffer goes first
                done = next((k for k, (_, got) in self.buffers.items() if got.all()), None)
                self.buffers.pop(done) if done is not None else self.buffers.popitem(last=False)
            self.buffers[load.sample_id] = (bytearray(size), np.zeros(size, dtype=bool))
        buffer, received = self.buffers[load.sample_id]
        buffer[load.offset : load.offset + len(load.data)] = load.data
        received[load.offset : load.offset + len(load.data)] = True
        return self.reply(frame, MessageType.ACK, wire.U32.pack(load.sample_id))

    def infer(self, frame: Frame, infer: wire.Infer) -> bytes | None:
        entry = self.buffers.get(infer.sample_id)
        if entry is None or not entry[1].all():  # not cached: the sample may complete later
            received = entry[1] if entry else np.zeros(self.backend.inputs[0].nbytes, dtype=bool)
            room = self.frame_limit - wire.MIN_FRAME - wire.Result.FORMAT.size
            missing = wire.pack_ranges(missing_ranges(received), room)
            result = wire.Result(infer.sample_id, ResultStatus.INCOMPLETE, 0, 0, 0, missing)
            return self.reply(frame, MessageType.RESULT, result.pack(), cache=False)
        desc = self.backend.inputs[0]
        q = np.frombuffer(bytes(entry[0]), dtype=DTYPE_NUMPY[desc.dtype]).reshape(desc.shape)
        start = time.perf_counter()
        for _ in range(max(1, infer.repeat)):
            out = self.backend.run(q)
        micros = int((time.perf_counter() - start) * 1e6 / max(1, infer.repeat))
        self.inferences += 1
        if self.faults is not None:
            out, micros = self.faults.on_result(out, micros)
            if self.faults.should_reset(self.inferences):
                self.port.write(self.faults.boot_banner())
                self.boot()
                return None
        result = wire.Result(
            infer.sample_id, ResultStatus.OK, micros * 100, micros, 0, out.tobytes()
        )
        if self.faults is not None and (broken := self.faults.malformed_reply(frame, result)):
            return broken
        return self.reply(frame, MessageType.RESULT, result.pack())
