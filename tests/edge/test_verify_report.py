"""verify's report: latency percentiles, link efficiency against the wire limit, report.md and
junit.xml rendered from report.json's fields, on hand-made reports (no device, no run)."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest
from edgekit.verify_report import (
    FAULT_COUNTERS,
    fault_summary,
    junit,
    latency,
    link_efficiency,
    render_junit,
    render_markdown,
)

STATS = {name: number for number, name in enumerate(FAULT_COUNTERS, start=1)}


def a_report(**changes: Any) -> dict[str, Any]:
    """A complete report of 3 answered windows out of 4, as verify writes it to report.json."""
    report: dict[str, Any] = {
        "partial": False,
        "device": {
            "url": "emu://",
            "runtime": "onnxruntime",
            "firmware": "edgekit-agent 0.2",
            "model_hash": "b5c390b635dd39f4",
        },
        "reference": "integer-reference",
        "samples_done": 3,
        "samples_total": 4,
        "seconds": 1.234,
        "samples_per_s": 2.46,
        "rows": {
            "device_vs_labels": {"accuracy": 0.75},
            "reference_vs_labels": {"accuracy": 2 / 3},
            "device_vs_reference": {
                "top1_agreement": 0.5,
                "max_lsb": 2.0,
                "exact_sample_fraction": 0.25,
                "cosine_mean": 0.98765432,
            },
        },
        "latency": {"device_us_p50": 34.5, "device_us_p95": 218.25},
        "link": {
            "baud": 115200,
            "wire_limit_bytes_per_s": 11520.0,
            "tx_bytes_per_s": 5760.4,
            "wire_utilisation": 0.5,
        },
        "link_stats": STATS,
        "gates": [
            {"name": "all_samples_answered", "value": 3, "limit": 4, "passed": False},
            {
                "name": "device_vs_reference",
                "value": "within tolerance",
                "limit": {"max_lsb": 1, "min_top1_agreement": 0.99},
                "passed": True,
            },
        ],
    }
    report.update(changes)
    return report


FAULTS = (
    "retries 1, timeouts 2, crc_errors 3, garbage_bytes 4, oversize 5, stray_replies 6, "
    "stale_replies 7, incomplete 8, resent_bytes 9, unconfirmed_loads 10, recoveries 11, resets 12"
)
REPORT_MD = f"""# On-device verification

- device `emu://`: onnxruntime / edgekit-agent 0.2, model b5c390b635dd39f4
- samples 3/4 in 1.23 s (2.5/s)

| row | accuracy | top-1 agreement | max \\|Δ\\| LSB | exact % | cosine |
|---|---|---|---|---|---|
| device vs labels | 0.7500 | | | | |
| reference vs labels | 0.6667 | | | | |
| device vs integer-reference | | 0.5000 | 2.0 | 25.00 | 0.987654 |

Latency (device-measured): device_us_p50 34.5, device_us_p95 218.2

Link: 5760 B/s sent, wire limit 11520 B/s at 115200 baud (50.0 %)

Faults seen: {FAULTS}

## Gates
- FAIL all_samples_answered: 3 (limit 4)
- PASS device_vs_reference: within tolerance (limit max_lsb=1, min_top1_agreement=0.99)
"""


def test_fault_summary_lists_every_counter_in_order() -> None:
    assert fault_summary(STATS) == FAULTS
    with pytest.raises(KeyError):
        fault_summary({name: 0 for name in FAULT_COUNTERS[:-1]})


def test_latency_percentiles_of_the_answered_windows() -> None:
    micros = np.array([40.0, 10.0, 30.0, 20.0, 1000.0])
    host = np.array([0.001, 0.002, 0.003, 0.004, 0.005])
    assert latency(micros, host) == pytest.approx(
        {
            "device_us_p50": 30.0,
            "device_us_p95": 808.0,
            "device_us_min": 10.0,
            "device_us_max": 1000.0,
            "host_ms_per_sample_mean": 3.0,
        }
    )
    assert latency(np.array([]), np.array([])) == {}
    assert latency(np.array([7.0]), np.array([0.5])) == {
        "device_us_p50": 7.0,
        "device_us_p95": 7.0,
        "device_us_min": 7.0,
        "device_us_max": 7.0,
        "host_ms_per_sample_mean": 500.0,
    }


def test_link_efficiency_is_bytes_a_second_against_a_tenth_of_the_baud() -> None:
    stats = {"tx_bytes": 4000, "rx_bytes": 1000, "tx_payload_bytes": 3000}
    assert link_efficiency(stats, 2.0, 20000) == {
        "baud": 20000,
        "wire_limit_bytes_per_s": 2000.0,
        "tx_bytes_per_s": 2000.0,
        "rx_bytes_per_s": 500.0,
        "wire_utilisation": 1.0,
        "payload_fraction": 0.75,
    }
    odd = link_efficiency(stats, 0.5, 12345)  # half a second, a baud no multiple of 10
    assert odd["wire_limit_bytes_per_s"] == 1234.5
    assert (odd["tx_bytes_per_s"], odd["rx_bytes_per_s"]) == (8000.0, 2000.0)
    thirds = link_efficiency(stats, 3.0, 20000)
    assert thirds["tx_bytes_per_s"] == pytest.approx(1333.333, abs=1e-3)
    assert thirds["rx_bytes_per_s"] == pytest.approx(333.333, abs=1e-3)


def test_a_link_faster_than_its_baud_is_named_a_pseudo_terminal() -> None:
    """8N1 carries baud / 10 bytes a second; above 5 % over that no UART is on the line."""
    stats = {"tx_bytes": 2100, "rx_bytes": 0, "tx_payload_bytes": 2100}
    at_limit = link_efficiency(stats, 1.0, 20000)
    assert at_limit["wire_utilisation"] == 1.05 and "note" not in at_limit
    faster = link_efficiency({**stats, "tx_bytes": 2102}, 1.0, 20000)
    assert faster["note"] == (
        "faster than the nominal baud: a pseudo-terminal or USB CDC link, not a real UART"
    )


def test_link_efficiency_without_time_bytes_or_baud_has_no_ratio() -> None:
    idle = link_efficiency({"tx_bytes": 0, "rx_bytes": 0, "tx_payload_bytes": 0}, 0.0, 9600)
    assert idle["tx_bytes_per_s"] == idle["rx_bytes_per_s"] == 0.0
    assert idle["wire_utilisation"] == 0.0 and idle["payload_fraction"] is None
    assert "note" not in idle
    instant = link_efficiency({"tx_bytes": 10, "rx_bytes": 5, "tx_payload_bytes": 5}, -1.0, 9600)
    assert instant["tx_bytes_per_s"] == instant["rx_bytes_per_s"] == 0.0
    unknown = link_efficiency({"tx_bytes": 10, "rx_bytes": 5, "tx_payload_bytes": 5}, 1.0, 0)
    assert unknown["wire_limit_bytes_per_s"] == 0.0 and unknown["wire_utilisation"] is None
    assert unknown["payload_fraction"] == 0.5 and "note" not in unknown


def test_report_md_holds_every_figure_in_its_place() -> None:
    assert render_markdown(a_report()) == REPORT_MD


def test_report_md_table_has_six_columns_in_every_row() -> None:
    """The `|Δ|` of the header is escaped: a bare `|` would split it into a seventh column."""
    table = [line for line in render_markdown(a_report()).splitlines() if line.startswith("|")]
    for line in table:
        cells = line.replace("\\|", "").strip("|").split("|")
        assert len(cells) == 6, line


def test_a_report_without_answers_shows_dashes_not_nan() -> None:
    rows = {"device_vs_labels": {}, "reference_vs_labels": {}, "device_vs_reference": {}}
    text = render_markdown(
        a_report(
            partial=True,
            device={"url": "rfc2217://127.0.0.1:1"},
            samples_done=0,
            seconds=0.004,
            samples_per_s=0.0,
            rows=rows,
            latency={},
            link={},
            link_stats={},
            error="cannot open rfc2217://127.0.0.1:1",
        )
    )
    assert text.startswith(
        "# On-device verification (PARTIAL)\n\n- device `rfc2217://127.0.0.1:1`:"
    )
    assert "`rfc2217://127.0.0.1:1`: ? / ?, model ?\n- samples 0/4 in 0.00 s (0.0/s)\n" in text
    assert "| device vs labels | - | | | | |\n| reference vs labels | - | | | | |\n" in text
    assert "| device vs integer-reference | | - | - | - | - |\n" in text
    assert "nan" not in text
    assert "Latency (device-measured): none\n\n## Gates\n" in text
    assert "Link:" not in text and "Faults seen" not in text
    assert text.endswith("\n\nStopped early: cannot open rfc2217://127.0.0.1:1\n")


def test_a_nan_figure_is_a_dash_and_zero_is_a_figure() -> None:
    rows = {
        "device_vs_labels": {"accuracy": 0.0},
        "reference_vs_labels": {"accuracy": math.nan},
        "device_vs_reference": {
            "top1_agreement": 0.0,
            "max_lsb": 0,
            "exact_sample_fraction": 0.0,
            "cosine_mean": math.nan,
        },
    }
    text = render_markdown(a_report(rows=rows))
    assert "| device vs labels | 0.0000 | | | | |\n| reference vs labels | - | | | | |\n" in text
    assert "| device vs integer-reference | | 0.0000 | 0 | 0.00 | - |\n" in text


def test_the_reference_row_names_the_reference_it_compared() -> None:
    report = a_report()
    del report["reference"]
    assert "| device vs reference | | 0.5000 |" in render_markdown(report)
    assert "| device vs onnxruntime | |" in render_markdown(a_report(reference="onnxruntime"))


def test_the_latency_plot_the_qemu_board_and_the_host_each_get_a_paragraph() -> None:
    device = {
        **a_report()["device"],
        "board": "mps2-an386",
        "board_description": "Cortex-M4 (MPS2 AN386)",
        "instructions_per_inference_median": 123456.7,
    }
    host = {"model": "AMD EPYC", "machine": "x86_64", "int8_kernel_class": "x86 with VNNI"}
    text = render_markdown(a_report(plots=["latency.png"], device=device, host_cpu=host))
    assert (
        "device_us_p95 218.2\n\n![device latency per window](latency.png)\n\n"
        "Board: Cortex-M4 (MPS2 AN386); instructions per inference 123457 (median; QEMU -icount "
        "counts them, receive interrupts during the inference included; export/mcu/report.json "
        "has the count without)\n\nLink: 5760 B/s"
    ) in text
    assert text.endswith(
        "(limit max_lsb=1, min_top1_agreement=0.99)\n\nHost CPU: AMD EPYC; x86 with VNNI\n"
    )
    nameless = render_markdown(a_report(host_cpu={**host, "model": ""}))
    assert nameless.endswith("\n\nHost CPU: x86_64; x86 with VNNI\n")
    assert "Board:" not in render_markdown(a_report()) and "![" not in render_markdown(a_report())


def test_the_link_line_carries_its_note_and_no_ratio_without_one() -> None:
    pty = {
        **a_report()["link"],
        "tx_bytes_per_s": 479734.2,
        "wire_utilisation": 41.64,
        "note": "faster than the nominal baud: a pseudo-terminal or USB CDC link, not a real UART",
    }
    assert (
        "Link: 479734 B/s sent, wire limit 11520 B/s at 115200 baud (4164.0 %): faster than the "
        "nominal baud: a pseudo-terminal or USB CDC link, not a real UART\n"
    ) in render_markdown(a_report(link=pty))
    idle = {**a_report()["link"], "tx_bytes_per_s": 0.0, "wire_utilisation": None}
    assert "Link: 0 B/s sent, wire limit 11520 B/s at 115200 baud\n" in render_markdown(
        a_report(link=idle)
    )


def test_a_disagreement_names_its_likely_cause_before_the_host() -> None:
    rows = a_report()["rows"]
    rows["device_vs_reference"]["diagnosis"] = "3 of 6 int8 layers can saturate"
    host = {"model": "Xeon", "machine": "x86_64", "int8_kernel_class": "x86 without VNNI"}
    text = render_markdown(a_report(rows=rows, host_cpu=host, error="unplugged"))
    assert text.endswith(
        "min_top1_agreement=0.99)\n\nLikely cause of the disagreement: 3 of 6 int8 layers can "
        "saturate\n\nHost CPU: Xeon; x86 without VNNI\n\nStopped early: unplugged\n"
    )


def test_junit_has_one_case_per_gate_and_counts_the_failures() -> None:
    text = render_junit(a_report(seconds=1.23456))
    assert text == (
        '<?xml version="1.0" encoding="utf-8"?>\n'
        '<testsuite name="edgekit.verify" tests="2" failures="1" time="1.235">\n'
        '  <testcase classname="edgekit.verify" name="all_samples_answered">'
        '<failure message="3 vs limit 4"/></testcase>\n'
        '  <testcase classname="edgekit.verify" name="device_vs_reference"></testcase>\n'
        "</testsuite>\n"
    )


def test_junit_quotes_what_it_is_given() -> None:
    text = junit('a "suite"', [("x < y & z", 'it\'s "bad" <here>'), ("ok", None)], 0.5)
    suite = ET.fromstring(text.split("\n", 1)[1])
    assert suite.attrib == {"name": 'a "suite"', "tests": "2", "failures": "1", "time": "0.500"}
    first, second = suite
    assert first.attrib == {"classname": 'a "suite"', "name": "x < y & z"}
    (failure,) = first
    assert failure.attrib == {"message": 'it\'s "bad" <here>'}
    assert second.attrib["name"] == "ok" and len(second) == 0
    two_of_three = ET.fromstring(
        junit("s", [("a", "x"), ("b", None), ("c", "y")], 0).split("\n", 1)[1]
    )
    assert (two_of_three.attrib["tests"], two_of_three.attrib["failures"]) == ("3", "2")
    empty = ET.fromstring(junit("s", [], 0.0).split("\n", 1)[1])
    assert empty.attrib["tests"] == "0" and empty.attrib["failures"] == "0" and len(empty) == 0
