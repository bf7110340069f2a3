"""On-device verification: latency, link efficiency and report rendering (comparisons: edgekit.compare)."""

from __future__ import annotations

import math
from typing import Any
from xml.sax.saxutils import quoteattr

import numpy as np

# The link's fault and recovery counters, in the order the console and report.md print them.
FAULT_COUNTERS = (
    "retries",
    "timeouts",
    "crc_errors",
    "garbage_bytes",
    "oversize",
    "stray_replies",
    "stale_replies",
    "incomplete",
    "resent_bytes",
    "unconfirmed_loads",
    "recoveries",
    "resets",
)


def fault_summary(stats: dict[str, Any]) -> str:
    """One line of every fault counter, shared by the console and report.md so they never differ."""
    return ", ".join(f"{name} {stats[name]}" for name in FAULT_COUNTERS)


def latency(micros: np.ndarray, host_seconds: np.ndarray) -> dict[str, float]:
    """Device-measured and host-seen latency percentiles of the answered windows, in µs."""
    if not len(micros):
        return {}
    return {
        "device_us_p50": float(np.percentile(micros, 50)),
        "device_us_p95": float(np.percentile(micros, 95)),
        "device_us_min": float(micros.min()),
        "device_us_max": float(micros.max()),
        "host_ms_per_sample_mean": float(1000 * host_seconds.mean()),
    }


def link_efficiency(stats: dict[str, Any], seconds: float, baud: int) -> dict[str, Any]:
    """Bytes per second on the line against the wire limit at this baud (8N1: baud / 10)."""
    wire_limit = baud / 10  # UART 8N1: 10 bits per byte
    achieved = stats["tx_bytes"] / seconds if seconds > 0 else 0.0
    result = {
        "baud": baud,
        "wire_limit_bytes_per_s": wire_limit,
        "tx_bytes_per_s": achieved,
        "rx_bytes_per_s": stats["rx_bytes"] / seconds if seconds > 0 else 0.0,
        "wire_utilisation": achieved / wire_limit if wire_limit else None,
        "payload_fraction": stats["tx_payload_bytes"] / stats["tx_bytes"]
        if stats["tx_bytes"]
        else None,
    }
    if result["wire_utilisation"] and result["wire_utilisation"] > 1.05:
        result["note"] = (
            "faster than the nominal baud: a pseudo-terminal or USB CDC link, not a real UART"
        )
    return result


def _figure(value: Any, spec: str) -> str:
    """A report figure, or "-" where the run has none (no answered window)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return format(value, spec)


def _limit(limit: Any) -> str:
    """A gate's limit: a tolerance's fields as `name=value`, anything else as it is."""
    if isinstance(limit, dict):
        return ", ".join(f"{name}={value}" for name, value in limit.items())
    return str(limit)


def render_markdown(report: dict[str, Any]) -> str:
    """verify/report.md: rows, latency, link, faults, gates and, on a failure, its likely cause."""
    rows = report["rows"]
    agreement = rows["device_vs_reference"]
    exact = agreement.get("exact_sample_fraction")
    device = report["device"]
    lines = [
        f"# On-device verification{' (PARTIAL)' if report['partial'] else ''}",
        "",
        f"- device `{device['url']}`: {device.get('runtime', '?')} / "
        f"{device.get('firmware', '?')}, model {device.get('model_hash', '?')}",
        f"- samples {report['samples_done']}/{report['samples_total']} in {report['seconds']:.2f} s "
        f"({report['samples_per_s']:.1f}/s)",
        "",
        "| row | accuracy | top-1 agreement | max \\|Δ\\| LSB | exact % | cosine |",
        "|---|---|---|---|---|---|",
        f"| device vs labels | {_figure(rows['device_vs_labels'].get('accuracy'), '.4f')} | | | | |",
        f"| reference vs labels | {_figure(rows['reference_vs_labels'].get('accuracy'), '.4f')} "
        "| | | | |",
        f"| device vs {report.get('reference', 'reference')} | "
        f"| {_figure(agreement.get('top1_agreement'), '.4f')} "
        f"| {_figure(agreement.get('max_lsb'), '')} "
        f"| {_figure(None if exact is None else 100 * exact, '.2f')} "
        f"| {_figure(agreement.get('cosine_mean'), '.6f')} |",
        "",
        "Latency (device-measured): "
        + (", ".join(f"{k} {v:.1f}" for k, v in report["latency"].items()) or "none"),
        "",
        *(["![device latency per window](latency.png)", ""] if report.get("plots") else []),
    ]
    if "board" in device:
        lines += [
            f"Board: {device['board_description']}; instructions per inference "
            f"{device['instructions_per_inference_median']:.0f} (median; QEMU -icount counts them, "
            "receive interrupts during the inference included; export/mcu/report.json has the "
            "count without)",
            "",
        ]
    link, stats = report["link"], report["link_stats"]
    if link:
        utilisation = (
            f" ({100 * link['wire_utilisation']:.1f} %)" if link["wire_utilisation"] else ""
        )
        note = f": {link['note']}" if "note" in link else ""
        lines += [
            f"Link: {link['tx_bytes_per_s']:.0f} B/s sent, wire limit "
            f"{link['wire_limit_bytes_per_s']:.0f} B/s at {link['baud']} baud{utilisation}{note}",
            "",
            "Faults seen: " + fault_summary(stats),
            "",
        ]
    lines += [
        "## Gates",
        *[
            f"- {'PASS' if g['passed'] else 'FAIL'} {g['name']}: {g['value']} "
            f"(limit {_limit(g['limit'])})"
            for g in report["gates"]
        ],
    ]
    if agreement.get("diagnosis"):
        lines += ["", f"Likely cause of the disagreement: {agreement['diagnosis']}"]
    if "host_cpu" in report:
        host = report["host_cpu"]
        lines += ["", f"Host CPU: {host['model'] or host['machine']}; {host['int8_kernel_class']}"]
    if report.get("error"):
        lines += ["", f"Stopped early: {report['error']}"]
    return "\n".join(lines) + "\n"


def junit(suite: str, cases: list[tuple[str, str | None]], seconds: float) -> str:
    """A JUnit file: one testcase per `(name, failure message or None)`."""
    lines = [
        f"  <testcase classname={quoteattr(suite)} name={quoteattr(name)}>"
        + ("" if failure is None else f"<failure message={quoteattr(failure)}/>")
        + "</testcase>"
        for name, failure in cases
    ]
    failures = sum(failure is not None for _, failure in cases)
    return (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        f'<testsuite name={quoteattr(suite)} tests="{len(cases)}" failures="{failures}" time="{seconds:.3f}">\n'
        + "\n".join(lines)
        + "\n</testsuite>\n"
    )


def render_junit(report: dict[str, Any]) -> str:
    """verify/junit.xml: one test case per gate, for CI dashboards."""
    cases = [
        (gate["name"], None if gate["passed"] else f"{gate['value']} vs limit {gate['limit']}")
        for gate in report["gates"]
    ]
    return junit("edgekit.verify", cases, report["seconds"])
