"""`--target mcu`: generated C bit-exact with the integer reference on every graph form the
reference runs, the arena plan, the footprint report, and clean failures."""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import shutil
import subprocess
from pathlib import Path

import numpy as np
import onnx
import pytest
from edgekit.errors import ExportError
from edgekit.firmware_bridge import toolchain
from edgekit.quantize.fsq_grid import fsq_thresholds
from edgekit.quantize.integer_reference import (
    ConvStep,
    FsqStep,
    IntegerReference,
    PoolStep,
    Tensor,
    conv_accumulate,
    fsq_code_index,
    fsq_levels,
    requantize,
)
from edgekit.targets import run_export
from edgekit.targets.mcu import c_source, run_native
from edgekit.targets.mcu_codegen import (
    EXACT_ONLY,
    accumulator_bound,
    activation_floor,
    fsq_source,
    generate,
    plan_arena,
    scale_fields,
)
from edgekit.train.sizing import fsq_levels_for
from onnx import numpy_helper

from ..quantize.test_integer_reference import (
    FIXTURES,
    adversarial_requantization,
    graph_variant,
    input_offset_variant,
)


def build_host(reference: IntegerReference, folder: Path) -> Path:
    """The generated C and the parity harness built with gcc -Wall -Wextra -Werror."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in generate(reference, hashlib.sha256(b"model").digest()).items():
        (folder / name).write_text(text)
    (folder / "firmware").mkdir(exist_ok=True)
    for name in ("edgekit_kernels.h",):
        (folder / name).write_text(c_source(name))
    for name in ("edgekit_parity.c", "edgekit_device.c", "edgekit_hal.h", "edgekit_hal_posix.c"):
        (folder / "firmware" / name).write_text(c_source(name))
    (folder / "Makefile").write_text(c_source("Makefile"))
    toolchain.make(folder, ["parity", "posix"], folder / "build")
    return folder


def assert_bit_exact(reference: IntegerReference, folder: Path, q_inputs: np.ndarray) -> None:
    native = run_native(folder, q_inputs, reference)
    expected = reference.run_quantized(q_inputs)
    pre_fsq_tensor = reference.pre_fsq_tensor
    pre_fsq_q = np.rint(
        expected.pre_fsq.reshape(len(q_inputs), -1) / np.float32(pre_fsq_tensor.scale)
    )
    offset = 128 if pre_fsq_tensor.lo == 0 else 0
    np.testing.assert_array_equal(native["logits_q"], expected.logits_q)
    np.testing.assert_array_equal(native["codes"], expected.codes)
    np.testing.assert_array_equal(
        native["pre_fsq_q"] + offset - pre_fsq_tensor.zero_point, pre_fsq_q
    )


def layer_variant(kind: str, folder: Path) -> Path:
    """The saved export with convolution attributes the trained graph never has."""
    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    first = convs[0]

    def set_attr(node: onnx.NodeProto, name: str, value: list[int]) -> None:
        kept = [a for a in node.attribute if a.name != name]
        del node.attribute[:]
        node.attribute.extend([*kept, onnx.helper.make_attribute(name, value)])

    if kind == "dilation":
        set_attr(first, "dilations", [1, 2])
        set_attr(first, "pads", [0, 2, 0, 2])
    elif kind == "full-rate stages":  # as model.dilated_stages builds them: taps in_c bytes apart
        set_attr(convs[1], "strides", [1, 1])
        set_attr(convs[1], "dilations", [1, 2])
        set_attr(convs[1], "pads", [0, 2, 0, 2])
        set_attr(convs[3], "dilations", [1, 2])
        set_attr(convs[3], "pads", [0, 2, 0, 2])
    elif kind == "wide padding":
        set_attr(first, "pads", [1, 3, 0, 4])
    elif kind == "stride 3":
        set_attr(convs[1], "strides", [1, 3])
    elif kind.startswith(
        "pool input scale"
    ):  # x4 raises the pooling's scale, /100 shrinks the last conv's (other shifts in the C)
        factor = 4.0 if kind.endswith("x4") else 0.01
        inits = {t.name: t for t in model.graph.initializer}
        nodes = list(model.graph.node)
        pool = next(n for n in nodes if n.op_type == "GlobalAveragePool")
        dq = next(n for n in nodes if n.output[0] == pool.input[0])
        q = next(n for n in nodes if n.output[0] == dq.input[0])
        scale = numpy_helper.to_array(inits[q.input[1]]) * np.float32(factor)
        model.graph.initializer.append(
            numpy_helper.from_array(scale.astype(np.float32), "pool_input_scale")
        )
        q.input[1] = dq.input[1] = "pool_input_scale"
    elif kind == "odd channels":  # the first conv loses an output channel (and the next an input)
        inits = {t.name: t for t in model.graph.initializer}
        weight_dq = next(n for n in model.graph.node if n.output[0] == first.input[1])
        bias_dq = next(n for n in model.graph.node if n.output[0] == first.input[2])
        next_dq = next(n for n in model.graph.node if n.output[0] == convs[1].input[1])
        for name, axis in ((weight_dq.input[0], 0), (weight_dq.input[1], 0), (weight_dq.input[2], 0),
                           (bias_dq.input[0], 0), (bias_dq.input[1], 0), (bias_dq.input[2], 0),
                           (next_dq.input[0], 1)):  # fmt: skip
            array = numpy_helper.to_array(inits[name])
            trimmed = (
                np.take(array, range(array.shape[axis] - 1), axis=axis) if array.ndim else array
            )
            inits[name].CopyFrom(numpy_helper.from_array(trimmed, name))
    del model.graph.value_info[:]
    path = folder / f"{kind.replace(' ', '_').replace('/', 'div')}.onnx"
    onnx.save(model, str(path))
    return path


VARIANTS = ["zero points", "uint8", "uint8 input", "saturating", "constants as nodes", "reshape",
            "weight zero points", "default attributes", "no bias", "empty bias name", "dilated and padded",
            "per-tensor weight scale", "max pool", "max pool overlapping", "max pool uint8",
            "max pool relu on the input"]  # fmt: skip
LAYERS = [
    "dilation",
    "full-rate stages",
    "wide padding",
    "stride 3",
    "odd channels",
    "pool input scale x4",
    "pool input scale /100",
]


@pytest.mark.parametrize("kind", ["as exported", *VARIANTS, *LAYERS])
def test_generated_c_is_bit_exact_with_the_integer_reference(kind: str, tmp_path: Path) -> None:
    """Logits, FSQ inputs and codes, on test windows and on noise wide enough to saturate."""
    if kind == "as exported":
        path = FIXTURES / "model_int8.onnx"
    else:
        path = (graph_variant if kind in VARIANTS else layer_variant)(kind, tmp_path)
    reference = IntegerReference.from_onnx(path)
    folder = build_host(reference, tmp_path / "c")
    X = np.load(FIXTURES / "inputs.npy")
    noise = (np.random.default_rng(0).normal(size=(64, *X.shape[1:])) * 4).astype(np.float32)
    q_inputs = reference.quantize_input(np.concatenate([X, noise]))
    assert len(np.unique(reference.run_quantized(q_inputs).codes)) > 1  # not a constant model
    assert_bit_exact(reference, folder, q_inputs)


def test_c_requantisation_is_the_integer_references(tmp_path: Path) -> None:
    """edgekit_requantize against `requantize` (itself held to float32 arithmetic) on accumulators
    of every magnitude, scales from 2^-38 to 2^3 and products a few float32 steps from a tie: both
    paths of the C (the fast one and its near-tie exits, the exact one's roundings and shifts)."""
    reference = IntegerReference.from_onnx(FIXTURES / "model_int8.onnx")
    folder = build_host(reference, tmp_path / "c")
    acc, scale = adversarial_requantization(100_000, seed=1)
    acc = np.concatenate([acc, [0, 2**31 - 1, -(2**31) + 1, 1 << 24, (1 << 24) + 1, 255]])
    scale = np.concatenate([scale, np.float32([0.5, 2.0**-38, 2.0**-38, 7.0, 3.0, 2.0**3])])
    mantissa, pre_shift, shift = scale_fields(scale, np.abs(acc))  # each case's own bound
    fields = np.stack([acc, mantissa, pre_shift, shift], axis=1).astype("<i4")
    out = subprocess.run([str(folder / "build" / "edgekit_parity"), "requantize"],
                         input=fields.tobytes(), capture_output=True, check=True).stdout  # fmt: skip
    got = np.frombuffer(out, "<i4")
    expected = requantize(acc.reshape(1, -1, 1, 1), scale, 0, -1000, 1000).ravel()
    np.testing.assert_array_equal(got, expected)
    # both paths and the fast path's near-tie exit are taken
    fast = pre_shift != EXACT_ONLY
    fixed = ((acc[fast] << pre_shift[fast]) * mantissa[fast]) >> 32
    near_tie = ((fixed + 512 + 2) & 1023) < 4
    assert fast.mean() > 0.2 and (~fast).sum() > 1000 and near_tie.sum() > 1000


def test_accumulator_bound_is_the_worst_case_and_gates_the_fast_path() -> None:
    """|bias| + the largest |x - zp| times the sum of |w - w_zp| bounds every accumulator (an input
    at its bounds with the weights' signs comes near it); a channel that could reach 2^24 takes the
    exact path only."""
    x = Tensor((2, 1, 1), 0.1, -3, -128, 127)  # |x - zp| up to 125 below, 130 above
    y = Tensor((2, 1, 1), 0.1, 0, -128, 127)
    weight = np.array([[3, -2], [100, 100]]).reshape(2, 2, 1, 1)
    step = ConvStep("c", x, y, weight, np.array([0, -1]), np.array([-5, 1 << 24]), (1, 1),
                    (0, 0, 0, 0), (1, 1), False, np.full(2, 2.0**-10, np.float32))  # fmt: skip
    bound = accumulator_bound(step)
    assert bound.tolist() == [5 + 130 * 5, (1 << 24) + 130 * 202]  # 127 - zp = 130 > zp + 128
    worst = np.where(weight[0, :, 0, 0] > 0, 127, -128).reshape(1, 2, 1, 1)
    acc = conv_accumulate(worst, step)[0, 0, 0, 0]
    assert acc == 3 * 130 + -2 * -125 - 5 <= bound[0]
    _, pre_shift, _ = scale_fields(step.scale, bound)
    assert pre_shift.tolist() == [2, EXACT_ONLY]  # 2^-10 = 2^23 * 2^-33: pre_shift 35 - 33
    pool = PoolStep("p", Tensor((3, 1, 7), 0.1, 0, 0, 255), y, False, np.ones(1, np.float32))
    assert accumulator_bound(pool).tolist() == [255 * 7]


@pytest.mark.parametrize("dither", [False, True])
def test_c_input_quantisation_matches_onnx(dither: bool, tmp_path: Path) -> None:
    """edgekit_quantize_input: the dither's float32 add (a dithered export), float32 division, half
    to even, saturation, as Add and QuantizeLinear."""
    path = input_offset_variant(tmp_path / "onnx") if dither else FIXTURES / "model_int8.onnx"
    reference = IntegerReference.from_onnx(path)
    folder = build_host(reference, tmp_path / "c")
    X = np.random.default_rng(1).normal(size=(32, *reference.input.shape)).astype(np.float32) * 3
    X[0].flat[:4] = [-1e9, 1e9, 0.5 * reference.input_scale, 2.5 * reference.input_scale]
    out = subprocess.run([str(folder / "build" / "edgekit_parity"), "quantize"], input=X.tobytes(),
                         capture_output=True, check=True).stdout  # fmt: skip
    got = np.frombuffer(out, np.int8).reshape(X.shape)
    np.testing.assert_array_equal(got, reference.quantize_input(X))
    if not dither:
        assert got[0].flat[2] == 0 and got[0].flat[3] == 2  # halves to even
    else:
        assert (got != reference.input.quantize(X)).any()


def test_arena_plan_keeps_live_tensors_apart() -> None:
    """Each step's input, output and im2col scratch never overlap and fit the arena; the arena
    stays within 10 % of the activation floor for the saved model."""
    reference = IntegerReference.from_onnx(FIXTURES / "model_int8.onnx")
    plan = plan_arena(reference)
    sizes = [reference.input.size, *(s.output.size for s in reference.steps)]
    for index, step in enumerate(reference.steps):
        spans = [(plan.offsets[index], sizes[index]), (plan.offsets[index + 1], sizes[index + 1])]
        if isinstance(step, ConvStep):
            k4 = -(-int(np.prod(step.weight.shape[1:])) // 4) * 4
            spans.append((plan.scratch_offsets[index], 4 * k4))
            assert plan.scratch_offsets[index] % 4 == 0  # LDRD needs aligned words
        spans.sort()
        for (start, size), (next_start, _) in itertools.pairwise(spans):
            assert start + size <= next_start
        assert all(start >= 0 and start + size <= plan.size - 4 for start, size in spans)
    assert plan.size + reference.input.size <= 1.1 * activation_floor(reference)


def test_unsupported_graphs_are_refused_before_anything_is_written(tmp_path: Path) -> None:
    """A 16-bit activation: the integer reference runs it, the int8 kernels cannot."""
    model = onnx.load(str(FIXTURES / "model_int8.onnx"))
    quantizers = [n for n in model.graph.node if n.op_type == "QuantizeLinear"]
    relu_q = next(n for n in quantizers if "encoder" in n.name)
    model.graph.initializer.append(numpy_helper.from_array(np.array(0, np.int16), "zp16"))
    for node in model.graph.node:
        if node is relu_q or (
            node.op_type == "DequantizeLinear" and node.input[0] == relu_q.output[0]
        ):
            node.input[2] = "zp16"
    reference = IntegerReference(model)
    with pytest.raises(ExportError, match="only int8/uint8 activations are supported"):
        generate(reference, b"\0" * 32)


def test_mcu_export_writes_sources_report_and_checks_itself(exported_run: Path) -> None:
    folder = exported_run / "export" / "mcu"
    for name in ("model.c", "model.h", "edgekit_kernels.h", "Makefile", "report.json",
                 "firmware/edgekit_device.c", "firmware/edgekit_hal_posix.c", "firmware/edgekit_hal_mps2.c",
                 "firmware/mps2_an386.ld", "build/edgekit_parity", "build/edgekit_device_posix"):  # fmt: skip
        assert (folder / name).is_file(), name
    report = json.loads((folder / "report.json").read_text())
    model = report["model"]
    assert model["macs_per_window"] == sum(s.get("macs", 0) for s in model["steps"]) > 0
    assert (
        model["sha256"]
        == hashlib.sha256((exported_run / "export/onnx/model_int8.onnx").read_bytes()).hexdigest()
    )
    assert (
        report["host_build_bit_exact_windows"].split("/")[0]
        == report["host_build_bit_exact_windows"].split("/")[1]
    )
    header = (folder / "model.h").read_text()
    assert f"#define EDGEKIT_MACS {model['macs_per_window']}u" in header
    if toolchain.missing_tools(toolchain.ARM_TOOLS):
        assert not report["target"]["measured"] and "apt-get" in report["target"]["reason"]


def test_the_header_says_how_to_feed_the_model(exported_run: Path, tmp_path: Path) -> None:
    """A C program built against model.h prints what the run's data/stats.json and config say."""
    stats = json.loads((exported_run / "data/stats.json").read_text())
    program = tmp_path / "meta.c"
    program.write_text(
        '#include <stdio.h>\n#include "model.h"\n'
        "static const char *classes[] = EDGEKIT_CLASS_NAMES;\n"
        "static const char *channels[] = EDGEKIT_CHANNEL_NAMES;\n"
        "static const float mean[] = EDGEKIT_CHANNEL_MEAN, std_[] = EDGEKIT_CHANNEL_STD;\n"
        "int main(void) {\n"
        '  for (int i = 0; i < EDGEKIT_NUM_CLASSES; i++) printf("class %s\\n", classes[i]);\n'
        "  for (int i = 0; i < EDGEKIT_NUM_CHANNELS; i++)\n"
        '    printf("channel %s %.9g %.9g\\n", channels[i], mean[i], std_[i]);\n'
        '  printf("window %d rate %.9g per_window %d interleaved %d\\n", EDGEKIT_WINDOW_LENGTH,\n'
        "         EDGEKIT_SAMPLE_RATE_HZ, EDGEKIT_NORMALIZE_PER_WINDOW, EDGEKIT_ROWS_INTERLEAVED);\n"
        '  printf("version %s config %s\\n", EDGEKIT_VERSION, EDGEKIT_CONFIG_HASH);\n'
        "  return 0;\n}\n"
    )
    binary = tmp_path / "meta"
    include = str(exported_run / "export/mcu")
    gcc = ["gcc", "-std=c99", "-Wall", "-Werror", "-I", include, str(program), "-o", str(binary)]
    subprocess.run(gcc, check=True)
    printed = subprocess.run([str(binary)], capture_output=True, text=True, check=True).stdout
    from edgekit import __version__
    from edgekit.config import load_run_config

    expected = [f"class {name}" for name in stats["class_names"]]
    for name, mean, std in zip(stats["channel_names"], stats["mean"], stats["std"], strict=True):
        expected.append(f"channel {name} {np.float32(mean):.9g} {np.float32(std):.9g}")
    per_window = int(stats["normalization"]["mode"] == "window")
    interleaved = int(stats["row_layout"] == "interleaved")
    expected += [
        f"window {stats['window_length']} rate {stats['fs']:.9g} per_window {per_window} "
        f"interleaved {interleaved}",
        f"version {__version__} config {load_run_config(exported_run).digest()}",
    ]
    assert printed.splitlines() == expected


def test_c_strings_escape_what_c_would_misread() -> None:
    from edgekit.targets.mcu_codegen import c_string

    assert c_string('a"b\\c??/') == '"a\\042b\\134c\\077\\077/"'
    assert c_string("µ") == '"\\302\\265"'  # UTF-8 bytes, octal


@pytest.mark.mcu_tools
def test_mcu_footprint_is_measured_on_the_emulated_board(exported_run: Path) -> None:
    report = json.loads((exported_run / "export/mcu/report.json").read_text())
    target = report["target"]
    assert target["measured"] and target["board"] == "mps2-an386"
    weights = report["model"]["weight_bytes"]
    for kind in ("dsp", "portable"):
        build = target["builds"][kind]
        assert build["bit_exact"], build["bit_exact_windows"]
        assert (
            build["flash_bytes"] > weights and build["ram_bytes"] >= report["model"]["arena_bytes"]
        )
        assert 0 < build["stack_high_water_bytes"] < 16384
        assert build["instructions_per_inference"] > report["model"]["macs_per_window"] / 2
        assert len(build["step_instructions"]) == len(report["model"]["steps"])
    # the DSP kernels do the same work in fewer instructions than the portable C
    builds = target["builds"]
    assert (
        builds["dsp"]["instructions_per_inference"]
        < builds["portable"]["instructions_per_inference"]
    )
    assert {g["name"] for g in target["goals"]} >= {"both builds bit-exact on the board"}
    elf = (
        exported_run / "export/mcu/build/edgekit_selftest_mps2.elf"
    )  # -icount: the same count every run
    assert toolchain.run_selftest(elf, "mps2-an386") == toolchain.run_selftest(elf, "mps2-an386")


def test_a_failing_mcu_export_leaves_no_half_written_folder(run_copy: Path, digest,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    shutil.rmtree(run_copy / "export" / "mcu")
    from edgekit.rundir.artifacts import Manifest

    manifest = Manifest(run_copy)
    manifest.data["artifacts"] = {
        k: v for k, v in manifest.data["artifacts"].items() if not k.startswith("export/mcu/")
    }
    manifest.save()
    before = digest(run_copy)

    def broken(
        folder: Path, targets: list[str], build_dir: Path, error: type = ExportError
    ) -> None:
        raise ExportError("building parity posix in x failed: model.c:1:1: error: boom")

    monkeypatch.setattr(toolchain, "make", broken)
    with pytest.raises(ExportError, match="error: boom"):
        run_export(run_copy, "mcu")
    assert not (run_copy / "export" / "mcu").exists()
    assert digest(run_copy) == before


def test_missing_tools_are_one_line_naming_the_install(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_which = shutil.which
    monkeypatch.setattr(
        shutil, "which", lambda name: None if name in ("gcc", "make") else real_which(name)
    )
    with pytest.raises(ExportError, match=r"gcc, make not found.*apt-get install -y gcc make"):
        run_export(run_copy, "mcu")
    monkeypatch.setattr(shutil, "which", lambda name: None if "arm" in name else real_which(name))
    summary = run_export(run_copy, "mcu")  # the C is still generated and checked on the host
    report = json.loads((run_copy / "export/mcu/report.json").read_text())
    assert not report["target"]["measured"]
    assert "gcc-arm-none-eabi libnewlib-arm-none-eabi qemu-system-arm" in report["target"]["reason"]
    assert any("not measured" in line for line in summary["report_lines"])


def test_export_of_a_run_given_by_a_relative_path(
    run_copy: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """make runs in the export folder: the build folder it is given must not be relative."""
    monkeypatch.chdir(run_copy.parent)
    run_export(Path(run_copy.name), "mcu")
    assert (run_copy / "export/mcu/build/edgekit_parity").is_file()
    assert not (run_copy / "export/mcu" / run_copy.name).exists()


def test_export_requires_the_onnx_export(run_copy: Path) -> None:
    shutil.rmtree(run_copy / "export" / "onnx")
    with pytest.raises(ExportError, match="--target onnx` first"):
        run_export(run_copy, "mcu")


def test_c_fsq_code_index_covers_the_largest_rule_codebook(tmp_path: Path) -> None:
    """The size rule's widest FSQ (12 dims, 8^6 * 5^6 = 4.096e9 codes, past 2^31) in `edgekit_fsq`:
    levels, stored codes and the uint32 code index equal the integer reference's, up to the last
    code."""
    levels = fsq_levels_for(60)
    assert math.prod(levels) == 8**6 * 5**6 > 2**31
    pre_fsq = Tensor((len(levels), 1, 1), 0.02, 0, -128, 127)
    codes = Tensor((len(levels), 1, 1), 1 / 127, 0, -128, 127)
    step = FsqStep(
        "fsq",
        pre_fsq,
        codes,
        levels,
        tuple(np.floor(t / pre_fsq.scale).astype(np.int64) for t in fsq_thresholds(levels)),
        tuple(
            np.rint((np.arange(lv) - lv // 2) / (lv // 2) * 127).astype(np.int64) for lv in levels
        ),
    )
    q = np.random.default_rng(0).integers(-128, 128, size=(500, len(levels)), dtype=np.int64)
    q[:2] = [[127] * len(levels), [-128] * len(levels)]  # the last code and code 0
    main = (
        '#include <stdio.h>\n#include "edgekit_kernels.h"\n#define EDGEKIT_ALIGNED\n'
        + fsq_source(0, step)
        + "int main(void) {\n"
        f"    int8_t in[{len(levels)}], out[{len(levels)}];\n"
        "    while (fread(in, sizeof in, 1, stdin) == 1) {\n"
        "        uint32_t code = edgekit_fsq(&step0, in, out);\n"
        "        fwrite(out, sizeof out, 1, stdout);\n        fwrite(&code, sizeof code, 1, stdout);\n"
        "    }\n    return 0;\n}\n"
    )
    (tmp_path / "edgekit_kernels.h").write_text(c_source("edgekit_kernels.h"))
    (tmp_path / "fsq.c").write_text(main)
    warnings = ["-Wall", "-Wextra", "-Werror", "-Wno-unused-function"]  # the other kernels unused
    subprocess.run(["gcc", "-std=c99", *warnings, "-o", str(tmp_path / "fsq"), str(tmp_path / "fsq.c")],
                   check=True)  # fmt: skip
    out = subprocess.run([str(tmp_path / "fsq")], input=q.astype(np.int8).tobytes(),
                         capture_output=True, check=True).stdout  # fmt: skip
    rows = np.frombuffer(out, np.uint8).reshape(len(q), len(levels) + 4)
    expected_levels = fsq_levels(step, q.reshape(len(q), -1, 1, 1))
    expected_codes = [
        code_values[expected_levels[:, d]] for d, code_values in enumerate(step.code_values)
    ]
    np.testing.assert_array_equal(
        rows[:, : len(levels)].view(np.int8), np.stack(expected_codes, axis=1)
    )
    got = rows[:, len(levels) :].copy().view("<u4").ravel().astype(np.int64)
    np.testing.assert_array_equal(got, fsq_code_index(step, q.reshape(len(q), -1, 1, 1)))
    assert got[0] == math.prod(levels) - 1 and got[1] == 0
