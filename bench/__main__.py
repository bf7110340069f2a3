"""Run every benchmark side by side in one process; write bench/results.json and bench/results.md.

uv run python -m bench            # all
uv run python -m bench training   # one or more of: training inference link fuzz memory mcu
uv run python -m bench accuracy   # public sets, seeds, ablation arms: see bench/accuracy.py
uv run python -m bench fewshot    # 5 windows per class: the default against a plain CNN
uv run python -m bench sweep      # the sweep against the default recipe, local and on Ray
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

from bench import accuracy, fewshot, fuzz, inference, link, mcu, memory, sweep, training
from bench.common import machine

BENCHMARKS = {
    "training": training.run,
    "inference": inference.run,
    "link": link.run,
    "fuzz": fuzz.run,
    "memory": memory.run,
    "mcu": mcu.run,
}
HERE = Path(__file__).resolve().parent


def render(results: dict) -> str:
    lines = [f"# edgekit benchmark results ({results['machine']})", ""]
    t = results.get("training")
    if t:
        lines += [
            "## Training (BasicMotions, default config, 2 threads)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| float phase | {t['float_steps_per_s']:.0f} steps/s, {t['float_windows_per_s']:.0f} "
            f"windows/s ({t['float_epochs']} epochs of {t['float_steps_per_epoch']} steps) |",
            f"| QAT phase | {t['qat_steps_per_s']:.0f} steps/s, {t['qat_windows_per_s']:.0f} windows/s "
            f"({t['qat_epochs']} epochs of {t['qat_steps_per_epoch']} steps); "
            f"QAT costs {t['qat_over_float_time_per_window']:.2f}x float per window |",
            f"| time to val acc 1.0 (float phase) | {t['float_seconds_to_val_acc_1']} s |",
            f"| whole training | {t['total_seconds']} s; test acc int8 "
            f"{t['int8_test_accuracy']:.4f}, float {t['float_test_accuracy']:.4f} |",
            "",
        ]
    i = results.get("inference")
    if i:
        lines += [
            "## Inference (1 thread, input " + "x".join(map(str, i["model_input"])) + ")",
            "",
            "| runtime | single window (median µs) | throughput (windows/s) |",
            "|---|---|---|",
        ]
        pairs = [
            ("ort_int8", "ort_int8"),
            ("ort_float", "ort_float"),
            ("torch_qat_eager", "torch_qat_eager_batch256"),
            ("torch_float_eager", "torch_float_eager_batch256"),
            ("integer_reference", "integer_reference_batch256"),
        ]
        lines += [
            f"| {a} | {i['single_window_us'][a]:.1f} | {i['throughput_windows_per_s'][b]:.0f} |"
            for a, b in pairs
        ]
        lines += [
            "",
            "Ratios: " + ", ".join(f"{k} {v:.2f}" for k, v in i["ratios"].items()),
            "",
            "Export wall time: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in i["export_seconds"].items()),
            "",
        ]
    li = results.get("link")
    if li:
        u = li["uart_921600"]
        lines += [
            "## Link (emulator, 900-byte int8 windows)",
            "",
            "| figure | value |",
            "|---|---|",
            "| unthrottled pty, end to end, emulator in its own process | "
            f"{li['pty_unthrottled']['windows_per_s']:.0f} windows/s "
            f"(median of 5 runs of {li['pty_unthrottled']['windows']} windows) |",
            "| unthrottled pty, end to end, emulator in the host process (`emu://`) | "
            f"{li['pty_unthrottled_in_process']['windows_per_s']:.0f} windows/s |",
            f"| 921600 baud: achieved | {u['tx_bytes_per_s']:.0f} B/s = "
            f"{100 * u['wire_utilisation']:.1f} % of the {u['wire_limit_bytes_per_s']:.0f} B/s wire limit |",
            f"| 921600 baud: windows/s | {u['windows_per_s']:.1f} (wire limit "
            f"{u['windows_per_s_wire_limit']:.1f} at {u['bytes_on_wire_per_window']:.0f} B/window) |",
            f"| payload share of bytes sent | {100 * u['payload_fraction']:.1f} % |",
            "",
        ]
        n = li.get("noisy_lines")
        if n:
            lines += [
                f"### Noisy lines ({n['baud']} baud, `device serve` in its own process, "
                f"{n['windows_per_run']} windows, median of 3 seeds)",
                "",
                "| line (per byte, both ways) | windows/s | of clean | chunk (B) | CRC "
                "errors | retries | INCOMPLETE | resent B | resyncs |",
                "|---|---|---|---|---|---|---|---|---|",
            ]
            lines += [
                f"| {name} | {r['windows_per_s']:.2f} | {100 * r['of_clean']:.0f} % | "
                f"{r['chunk_bytes']} | {r['crc_errors']} | {r['retries']} | "
                f"{r['incomplete']} | {r['resent_bytes']} | {r['recoveries']} |"
                for name, r in n["lines"].items()
            ]
            lines += [""]
    f = results.get("fuzz")
    if f:
        lines += [
            "## Frame decoder fuzz (hypothesis)",
            "",
            f"{f['cases']} cases in {f['seconds']:.1f} s, {f['frames']} frames decoded, "
            f"largest buffer {f['max_buffer']} B (bound {f['buffer_bound']} B); no crash, no hang.",
            "",
        ]
    m = results.get("memory")
    if m:
        lines += [
            "## Memory (`" + m["data_set"] + f"`, {m['data_set_float32_mb']:.0f} MiB as float32)",
            "",
            "| figure | value |",
            "|---|---|",
            f"| peak RSS, large run / tiny run | {m['large_run_peak_rss_mb']:.0f} / "
            f"{m['tiny_run_peak_rss_mb']:.0f} MiB |",
            f"| peak above the tiny run | {m['large_run_above_tiny_mb']:.0f} MiB = "
            f"{m['above_tiny_over_data_size']:.2f}x the data set (goal <= 2x) |",
            f"| run's data/ folder on disk | {m['run_data_folder_mb']:.0f} MiB |",
            f"| prepare (`edgekit data inspect`) | {m['prepare_seconds']:.1f} s, peak "
            f"{m['prepare_peak_rss_mb']:.0f} MiB |",
            "",
        ]
    if results.get("mcu"):
        lines += mcu.render(results["mcu"])
    return "\n".join(lines)


def main(names: list[str]) -> None:
    from edgekit.cli import quiet_third_party

    quiet_third_party()
    unknown = [n for n in names if n not in BENCHMARKS]
    if unknown:
        sys.exit(f"unknown benchmark {unknown}; choose from {list(BENCHMARKS)}")
    previous = HERE / "results.json"
    # a subset run updates its own sections and keeps the others' last figures
    results: dict = json.loads(previous.read_text()) if names and previous.is_file() else {}
    results.update(
        {
            "machine": machine(),
            "started": time.time(),
        }
    )
    with tempfile.TemporaryDirectory(prefix="edgekit-bench-") as tmp:
        for name in names or list(BENCHMARKS):
            print(f"bench: {name} ...", flush=True)
            start = time.perf_counter()
            results[name] = BENCHMARKS[name](Path(tmp))
            results[name]["bench_seconds"] = round(time.perf_counter() - start, 1)
    (HERE / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (HERE / "results.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    if sys.argv[1:2] == ["accuracy"]:
        accuracy.main(sys.argv[2:])
    elif sys.argv[1:2] == ["fewshot"]:
        fewshot.main(sys.argv[2:])
    elif sys.argv[1:2] == ["sweep"]:
        sweep.main(sys.argv[2:])
    else:
        main(sys.argv[1:])
