"""The MCU target's footprint and speed: generated C on QEMU's Cortex-M4 (mps2-an386), DSP and
portable builds, beside the floors; and `verify --device qemu://` end to end.

Instruction counts are deterministic (`-icount shift=0`, read through SysTick: 40 instructions a
tick), so one run per build is the measurement; verify throughput is a median of 3 runs.
"""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from bench.common import build_run

# name: (config, overrides); accuracy does not matter here, only the shapes
SYNTHETIC = "data.source=synthetic:n=600,length=128,channels=9"
MODELS = {
    "basicmotions_default": (None, ["train.float_epochs=5", "train.qat_epochs=2"]),
    "synthetic_9x128_large": (
        None,
        [SYNTHETIC, "model.size=large", "train.float_epochs=1", "train.qat_epochs=1"],
    ),
}


def run(folder: Path) -> dict[str, Any]:
    from edgekit.verify import QEMU_GATES, VerifyOptions, run_verify

    results: dict[str, Any] = {}
    for name, (config, overrides) in MODELS.items():
        run_dir, _ = build_run(folder / name, config, overrides, targets=("onnx", "mcu"))
        report = json.loads((run_dir / "export/mcu/report.json").read_text())
        if not report["target"]["measured"]:
            raise SystemExit(f"bench mcu: {report['target']['reason']}")
        rates = []
        for _ in range(3):
            verify = run_verify(
                run_dir, VerifyOptions(device="qemu://", show_progress=False, **QEMU_GATES)
            )
            if not verify["passed"]:
                raise SystemExit(f"bench mcu: verify over qemu:// failed: {verify.get('error')}")
            rates.append(verify["samples_per_s"])
        results[name] = {
            "model": report["model"],
            "floors": report["floors"],
            "target": report["target"],
            "verify_windows": verify["samples_done"],
            "verify_windows_per_s_median": statistics.median(rates),
            "verify_windows_per_s": rates,
            "verify_instructions_per_inference": verify["device"][
                "instructions_per_inference_median"
            ],
            "verify_max_lsb": verify["rows"]["device_vs_reference"]["max_lsb"],
            "verify_top1_agreement": verify["rows"]["device_vs_reference"]["top1_agreement"],
        }
    return results


def render(results: dict[str, Any]) -> list[str]:
    lines = ["## MCU target (generated C on QEMU mps2-an386, Cortex-M4; `-icount shift=0`)", ""]
    for name, r in results.items():
        if not isinstance(r, dict) or "model" not in r:
            continue
        model, target = r["model"], r["target"]
        shape = " -> ".join(str(tuple(s["output"])) for s in model["steps"] if s["kind"] == "conv")
        lines += [
            f"### {name}: {model['macs_per_window']} MACs/window, convs {shape}",
            "",
            "| build | flash B (text+rodata+data) | RAM B (data+bss) | stack B | arena B "
            "| instructions/inference | instr/MAC (convs) | instr/MAC (all) | bit-exact |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for kind, b in target["builds"].items():
            lines.append(
                f"| {kind} | {b['flash_bytes']} | {b['ram_bytes']} | "
                f"{b['stack_high_water_bytes']} | {model['arena_bytes']} | "
                f"{b['instructions_per_inference']} | {b['conv_instructions_per_mac']} | "
                f"{b['instructions_per_mac']} | {b['bit_exact_windows']} |"
            )
        floors = r["floors"]
        lines.append(
            f"| floor | weights {floors['flash_weight_bytes']} | | | activations+input {floors['activation_bytes']} | "
            f"{floors['instructions_per_mac'] * model['macs_per_window']:.0f} | {floors['instructions_per_mac']} | | |"
        )
        lines += [""] + [
            f"- goal {'met' if g['passed'] else 'MISSED'}: {g['name']}: {g['value']}"
            for g in target["goals"]
        ]
        pools = [i for i, step in enumerate(model["steps"]) if step["kind"] == "maxpool"]
        if pools:
            outputs = sum(math.prod(model["steps"][i]["output"]) for i in pools)
            pooling = {
                kind: sum(build["step_instructions"][i] for i in pools)
                for kind, build in target["builds"].items()
            }
            per_build = ", ".join(
                f"{kind} {count} ({count / outputs:.2f} per output)"
                for kind, count in pooling.items()
            )
            lines.append(f"- {len(pools)} max pools, {outputs} outputs: instructions {per_build}")
        lines += [
            f"- `verify --device qemu://`: {r['verify_windows']} windows, "
            f"{r['verify_windows_per_s_median']:.1f} windows/s "
            f"(median of 3), {r['verify_instructions_per_inference']:.0f} "
            f"instructions/inference, max {r['verify_max_lsb']} LSB, "
            f"top-1 {r['verify_top1_agreement']:.4f}",
            "",
        ]
    return lines
