"""What a trial may cost on the target (`--budget flash=64k,ram=20k,macs=2M,latency_ms=5`), and its
figures, taken from the untrained network before any training (edgekit.analyze's planners).

Byte budgets read `k` as 1024 and `M` as 1024² (as MCU datasheets quote flash and RAM); counts
(`params`, `macs`) read `k` as 1000 and `M` as 10⁶. The MCU figures are those of the generated C's
DSP build (Cortex-M4/M7): flash and RAM the upper ends of analyze's estimates (the whole firmware,
wire protocol included), latency its instruction estimate at `cpu_mhz`, one instruction a cycle.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from edgekit.errors import ConfigError

EVERY_TARGET = ("onnx", "mcu", "hailo")
# budget key -> (figure it limits, unit kind, targets that have that figure)
LIMITS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    "params": ("parameters", "count", EVERY_TARGET),
    "macs": ("macs", "count", EVERY_TARGET),  # multiply-accumulates per window
    "weights": ("weight_bytes", "bytes", EVERY_TARGET),  # int8 weight + int32 bias bytes
    "flash": ("flash_bytes", "bytes", ("mcu",)),  # the whole firmware (estimate)
    "ram": ("ram_bytes", "bytes", ("mcu",)),  # the whole firmware's static RAM (estimate)
    "latency_ms": ("latency_ms", "ms", ("mcu",)),  # per window at cpu_mhz
}
CLOCK = "cpu_mhz"  # the MCU's clock in MHz: a setting, not a limit; latency_ms needs it
SCALE = {"count": {"": 1, "k": 1000, "m": 10**6}, "bytes": {"": 1, "k": 1024, "m": 1024**2}}
PLAIN = {"": 1}  # milliseconds and megahertz take no k or M
EXAMPLE = {"count": "2M", "bytes": "64k", "ms": "5", "mhz": "80"}
NUMBER = re.compile(r"^\s*([0-9]*\.?[0-9]+(?:e[+-]?[0-9]+)?)\s*([km]?)(i?b)?\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Budget:
    """Limits on a trial's figures (each at most its value) and the settings they need."""

    limits: dict[str, float] = field(default_factory=dict)  # budget key -> limit
    cpu_mhz: float | None = None

    def violations(self, figures: dict[str, Any]) -> list[str]:
        """One phrase per limit the figures exceed, e.g. 'flash 70311 > 65536'."""
        over = []
        for key, limit in self.limits.items():
            value = figures.get(LIMITS[key][0])
            if value is not None and value > limit:
                over.append(f"{key} {value:g} > {limit:g}")
        if figures.get("hailo_ready") is False:
            over.append(f"not Hailo-ready ({', '.join(figures.get('hailo_errors', []))})")
        return over

    def latency_ms(self, instructions: float) -> float | None:
        """Milliseconds per window at `cpu_mhz`, one instruction a cycle; None without a clock."""
        return round(instructions / (self.cpu_mhz * 1000), 3) if self.cpu_mhz else None

    def describe(self) -> str:
        parts = [f"{key}<={value:g}" for key, value in self.limits.items()]
        parts += [f"cpu_mhz={self.cpu_mhz:g}"] if self.cpu_mhz else []
        return ", ".join(parts) or "none"


def _number(key: str, text: str, kind: str) -> float:
    match = NUMBER.match(text)
    scale = SCALE.get(kind, PLAIN)
    prefix = match.group(2).lower() if match else ""
    if not match or prefix not in scale or (match.group(3) and kind != "bytes"):
        raise ConfigError(f"--budget {key}={text}: expected a number such as {key}={EXAMPLE[kind]}")
    value = float(match.group(1)) * scale[prefix]
    if not math.isfinite(value) or value <= 0:
        raise ConfigError(f"--budget {key}={text}: must be a positive number")
    return value


def parse_budget(text: str | None, target: str) -> Budget:
    """`flash=64k,ram=20k,...` for this target; one-line errors naming the item and the fix."""
    limits: dict[str, float] = {}
    cpu_mhz = None
    for item in (text or "").split(","):
        if not item.strip():
            continue
        key, sep, value = item.partition("=")
        key = key.strip().lower()
        if not sep:
            raise ConfigError(
                f"--budget {item!r}: expected KEY=VALUE, e.g. --budget flash=64k,ram=20k"
            )
        if key == CLOCK:
            cpu_mhz = _number(key, value, "mhz")
            continue
        if key not in LIMITS:
            import difflib

            close = difflib.get_close_matches(key, [*LIMITS, CLOCK], n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"use {', '.join([*LIMITS, CLOCK])}"
            raise ConfigError(f"--budget: unknown item '{key}'; {hint}")
        _, kind, targets = LIMITS[key]
        if target not in targets:
            raise ConfigError(
                f"--budget {key}: only the {'/'.join(targets)} target has that figure; "
                f"use --target {targets[0]} or drop {key}"
            )
        limits[key] = _number(key, value, kind)
    if "latency_ms" in limits and cpu_mhz is None:
        raise ConfigError(
            "--budget latency_ms needs the MCU's clock: add cpu_mhz=..., e.g. latency_ms=5,cpu_mhz=80"
        )
    return Budget(limits, cpu_mhz)


def figures_of(model: Any, target: str, budget: Budget, opset: int) -> dict[str, Any]:
    """A network's budget figures from its shapes alone (it may be untrained): totals for every
    target, the MCU firmware's estimates for mcu, the readiness verdict of its device graph
    (exported at `opset`) for hailo."""
    from edgekit.analyze import mcu_figures, mcu_steps_of_model, untrained_hailo_verdict
    from edgekit.evaluate import layer_costs, totals

    total = totals(layer_costs(model))
    figures: dict[str, Any] = {
        "parameters": total["parameters"],
        "macs": total["macs"],
        "weight_bytes": total["weight_bytes"],
    }
    if target == "mcu":
        shape = (model.config.in_channels, 2, model.config.input_width)
        mcu = mcu_figures(math.prod(shape), mcu_steps_of_model(model))
        instructions = mcu["instructions_estimate"]["dsp"]
        figures.update(
            flash_bytes=mcu["flash_estimate"]["dsp"][1],
            ram_bytes=mcu["ram_estimate"][1],
            instructions=instructions,
        )
        if budget.cpu_mhz:
            figures["latency_ms"] = budget.latency_ms(instructions)
    elif target == "hailo":
        verdict = untrained_hailo_verdict(model, opset)
        figures.update(hailo_ready=verdict["ready"], hailo_errors=verdict["errors"])
    return figures
