"""`edgekit analyze`: what a model costs before it is built, per layer and in total.

From a config the network is built untrained (the data is read for its shape and classes, no
training, no Brevitas); from a run its float twin is measured. `--target mcu` adds the generated
C's static RAM and constants with flash and instruction estimates (from a run's int8 graph, or
planned from a config's shapes), `--target hailo` the readiness verdict of the device graph (the
run's export, or the config's untrained graph).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from edgekit.evaluate import INT32_BYTES, layer_costs, totals
from edgekit.models import Conv2dFSQNet
from edgekit.rundir import layout

# (MACs per window, instructions per inference) of the generated C on a Cortex-M4, measured by
# `edgekit export --target mcu` on QEMU mps2-an386 with -icount for the tiny preset's model and the
# bundled BasicMotions model (README, "The MCU target"). The estimate is the line through both: its
# slope is the instructions per MAC of the convolutions, its intercept what every inference pays
# besides (pooling, FSQ, head, calls), which dominates small models.
MEASURED_INSTRUCTIONS = {
    "dsp": ((72764, 153816), (583148, 844058)),
    "portable": ((72764, 295221), (583148, 1891195)),
}
# Flash of the firmware's code (text: kernels, wire protocol, HAL, the model's calls), measured by
# `edgekit export --target mcu` on the same two builds (arm-none-eabi-gcc -O2, --gc-sections): the
# estimate's range for a model in between.
MEASURED_CODE_BYTES = {"dsp": (8288, 9504), "portable": (9248, 10656)}
# The firmware's static RAM (.data + .bss) beyond the model's arena and input (wire-protocol frame
# buffers, HAL ring buffer), the same two builds: 7828 - 1636 - 384 and 11796 - 5124 - 600 bytes.
MEASURED_FIRMWARE_RAM_BYTES = (5808, 6072)
# The generated constants beside the weights: sizeof(edgekit_channel_t) per output channel, one
# edgekit_conv_t per convolution, the pooling and FSQ descriptors, and what the same builds held
# beyond those arrays (descriptors, strings), calibrated on the same two builds.
CHANNEL_BYTES, CONV_STRUCT_BYTES, OTHER_CONSTANT_BYTES = 12, 40, 300


def analyze_model(model: Conv2dFSQNet, source: str) -> dict[str, Any]:
    """The per-layer table and totals of one network."""
    costs = layer_costs(model)
    return {
        "source": source,
        "input_shape": [model.config.in_channels, 2, model.config.input_width],
        "classes": model.config.num_classes,
        "fsq_levels": list(model.config.fsq_levels),
        "layers": [asdict(c) for c in costs],
        "totals": totals(costs),
    }


def analyze_config(config: Any, target: str | None = None) -> dict[str, Any]:
    """An untrained network of this config on its data's shape: no training, no Brevitas. For
    `hailo`, its device graph is exported to a temporary ONNX file and checked for readiness; for
    `mcu`, the generated C's figures are planned from its shapes (neither depends on the trained
    weights)."""
    from edgekit.data.prepare import prepare_data
    from edgekit.train.loop import net_config_for

    data = prepare_data(config.data)
    model = Conv2dFSQNet(net_config_for(config, data, quant=False))
    result = analyze_model(model, f"config (untrained), data {config.data.source}")
    if target == "hailo":
        result["hailo"] = untrained_hailo_verdict(model, config.export.opset)
    elif target == "mcu":
        shape = (model.config.in_channels, 2, model.config.input_width)
        result["mcu"] = mcu_figures(math.prod(shape), mcu_steps_of_model(model))
    return result


def untrained_hailo_verdict(model: Conv2dFSQNet, opset: int) -> dict[str, Any]:
    """The Hailo readiness verdict of an untrained network's device graph, exported as the hailo
    target exports it (legacy exporter, onnxsim) into a temporary folder."""
    import tempfile

    from edgekit.export import Part, export_torch, simplify
    from edgekit.onnx_io import save_onnx
    from edgekit.targets.hailo_readiness import check_hailo_readiness

    example = torch.zeros(1, model.config.in_channels, 2, model.config.input_width)
    with tempfile.TemporaryDirectory(prefix="edgekit-analyze-") as folder:
        path = Path(folder) / "model_device.onnx"
        graph = export_torch(Part(model, "device"), example, path, opset, ["pre_fsq"], False)
        save_onnx(simplify(graph, keep_qdq=False), path)
        report = check_hailo_readiness(str(path))
    return {
        "available": True,
        "graph": "the untrained device graph (temporary)",
        "ready": report["ready"],
        "errors": report["errors"],
        "warnings": report.get("warnings", []),
    }


def analyze_run(run_dir: str | Path, target: str | None = None) -> dict[str, Any]:
    """A trained run's network, plus what its `target` export says (mcu: RAM and constants of
    the generated C; hailo: the readiness verdict)."""
    from edgekit.rundir.run import Run

    run = Run(run_dir)
    result = analyze_model(run.float_model(), f"run {run.path}")
    if target == "mcu":
        result["mcu"] = mcu_memory(run)
    elif target == "hailo":
        result["hailo"] = hailo_verdict(run)
    return result


@dataclass(frozen=True)
class McuStep:
    """One step of the generated C as its memory and time depend on it: shapes only."""

    output_bytes: int
    out_channels: int = 0  # convolutions: output channels, each with an edgekit_channel_t
    k4: int = 0  # convolutions: the reduction length rounded up to a multiple of 4
    macs: int = 0
    weight_bytes: int = 0


def mcu_figures(input_bytes: int, steps: list[McuStep]) -> dict[str, Any]:
    """Static RAM (the arena planner's plan of these shapes), the model's constants, and
    estimates of flash (the constants as the generated C lays them out plus the code measured on
    two builds) and of instructions; `edgekit export --target mcu` measures both."""
    from edgekit.targets.mcu_codegen import plan_sizes

    convs = [step for step in steps if step.k4]
    macs = sum(step.macs for step in convs)
    plan = plan_sizes([input_bytes, *(s.output_bytes for s in steps)], [4 * s.k4 for s in steps])
    constants = OTHER_CONSTANT_BYTES + sum(
        s.out_channels * (s.k4 + CHANNEL_BYTES) + CONV_STRUCT_BYTES for s in convs
    )
    return {
        "available": True,
        "arena_bytes": plan.size,
        "input_bytes": input_bytes,
        "weight_bytes": sum(s.weight_bytes for s in convs),
        "bias_bytes": INT32_BYTES * sum(s.out_channels for s in convs),
        "macs": macs,
        "flash_estimate": {
            path: [constants + low, constants + high]
            for path, (low, high) in MEASURED_CODE_BYTES.items()
        },
        "ram_estimate": [input_bytes + plan.size + extra for extra in MEASURED_FIRMWARE_RAM_BYTES],
        "instructions_estimate": {
            path: round(instructions_estimate(macs, *points))
            for path, points in MEASURED_INSTRUCTIONS.items()
        },
    }


def instructions_estimate(macs: int, small: tuple[int, int], large: tuple[int, int]) -> float:
    """Instructions per inference on the line through two measured builds' (MACs, instructions)."""
    per_mac = (large[1] - small[1]) / (large[0] - small[0])
    return small[1] + per_mac * (macs - small[0])


def mcu_steps_of_model(model: Conv2dFSQNet) -> list[McuStep]:
    """The steps the generated C would run for this network, from its float shapes: each
    convolution, the pooling, and FSQ after the projection (as the int8 graph lowers them)."""
    steps = []
    for cost in layer_costs(model):
        size = math.prod(cost.output_shape)
        if cost.op.startswith("Conv"):
            channels = cost.output_shape[0]
            reduction = cost.weight_bytes - INT32_BYTES * channels  # weights only
            per_channel = reduction // channels
            steps.append(McuStep(size, channels, -(-per_channel // 4) * 4, cost.macs, reduction))
        else:
            steps.append(McuStep(size))
        if cost.name == "project":
            steps.append(McuStep(len(model.config.fsq_levels)))  # FSQ codes, one per dimension
    return steps


def mcu_memory(run: Any) -> dict[str, Any]:
    """mcu_figures of the run's int8 ONNX model, exactly as the generated C holds it."""
    from edgekit.quantize.integer_reference import ConvStep, IntegerReference
    from edgekit.targets.mcu_codegen import k4

    model_path = run.path / layout.INT8_MODEL
    if not model_path.is_file():
        return {"available": False, "why": f"run `edgekit export {run.path} --target onnx` first"}
    run.verified(layout.INT8_MODEL)
    reference = IntegerReference.from_onnx(model_path)
    steps = [
        McuStep(s.output.size, s.weight.shape[0], k4(s), s.macs, s.weight.size)
        if isinstance(s, ConvStep)
        else McuStep(s.output.size)
        for s in reference.steps
    ]
    return mcu_figures(reference.input.size, steps)


def hailo_verdict(run: Any) -> dict[str, Any]:
    """The readiness verdict of the run's exported Hailo device graph, if there is one."""
    from edgekit.targets.hailo_readiness import check_hailo_readiness

    exports = sorted((run.path / "export" / "hailo").glob("*/model_device.onnx"))
    if not exports:
        return {"available": False, "why": f"run `edgekit export {run.path} --target hailo` first"}
    report = check_hailo_readiness(str(exports[0]))
    return {
        "available": True,
        "graph": str(exports[0]),
        "ready": report["ready"],
        "errors": report["errors"],
        "warnings": report.get("warnings", []),
    }


def format_analysis(result: dict[str, Any]) -> str:
    """The console table: one row a layer, then the totals and the target's part."""
    header = (
        f"{'layer':<22} {'op':<18} {'in':<12} {'out':<12} {'params':>7} {'MACs':>9} "
        f"{'weight B':>8} {'act B':>7}"
    )
    lines = [f"{result['source']}; input {tuple(result['input_shape'])}", header]
    for layer in result["layers"]:
        lines.append(
            f"{layer['name'][:22]:<22} {layer['op']:<18} "
            f"{'x'.join(map(str, layer['input_shape'])):<12} "
            f"{'x'.join(map(str, layer['output_shape'])):<12} {layer['parameters']:>7} "
            f"{layer['macs']:>9} {layer['weight_bytes']:>8} {layer['activation_bytes']:>7}"
        )
    t = result["totals"]
    lines.append(
        f"total: {t['parameters']} parameters, {t['macs']} MACs/window, {t['weight_bytes']} int8 "
        f"weight bytes, peak activations ~{t['peak_activation_bytes_estimate']} B "
        "(one layer's input and output)"
    )
    for target in ("mcu", "hailo"):
        part = result.get(target)
        if part is None:
            continue
        if not part["available"]:
            lines.append(f"{target}: {part['why']}")
        elif target == "mcu":
            estimate = part["instructions_estimate"]
            flash = part["flash_estimate"]
            lines += [
                f"mcu: static RAM: activation arena {part['arena_bytes']} B (the planner's, im2col "
                f"scratch included) + input {part['input_bytes']} B; model constants: weights "
                f"{part['weight_bytes']} B + biases {part['bias_bytes']} B",
                f"mcu: flash about {flash['dsp'][0]}-{flash['dsp'][1]} B with the DSP kernels, "
                f"{flash['portable'][0]}-{flash['portable'][1]} B portable (estimate: the "
                "generated constants + the code measured on the tiny and bundled models' builds)",
                f"mcu: firmware static RAM about {part['ram_estimate'][0]}-{part['ram_estimate'][1]} B "
                "(arena + input + the wire protocol's buffers measured on the same two builds)",
                f"mcu: about {estimate['dsp']} instructions per inference with the DSP kernels, "
                f"{estimate['portable']} portable (estimate for {part['macs']} MACs on the line "
                "through the tiny and bundled models' builds measured under QEMU)",
            ]
        else:
            verdict = "READY" if part["ready"] else f"NOT READY ({', '.join(part['errors'])})"
            lines.append(f"hailo: {verdict} ({part['graph']})")
    return "\n".join(lines)
