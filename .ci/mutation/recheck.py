"""Re-run the surviving mutants of a cosmic-ray session against today's tests, without redoing the
whole session: python .ci/mutation/recheck.py NAME   (NAME.toml and NAME.sqlite in .ci/mutation/).

Prints each mutant still alive (file:line, operator) and the kill rate. Mutants inside type
annotations are counted apart as equivalent: every module has `from __future__ import annotations`,
so annotations are never evaluated. Other equivalent mutants are listed in .ci/mutation/README.md.
"""

from __future__ import annotations

import ast
import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def annotation_spans(path: Path) -> list[tuple[tuple[int, int], tuple[int, int]]]:
    """(start, end) positions of every annotation in the file, 1-based lines as cosmic-ray gives."""
    spans = []
    for node in ast.walk(ast.parse(path.read_text())):
        annotations = []
        if isinstance(node, ast.arg | ast.AnnAssign) and node.annotation is not None:
            annotations.append(node.annotation)
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.returns is not None:
            annotations.append(node.returns)
        for item in annotations:
            end = (item.end_lineno or item.lineno, item.end_col_offset or 0)
            spans.append(((item.lineno, item.col_offset), end))
    return spans


def in_annotation(mutation: dict, spans: list) -> bool:
    position = tuple(mutation["start_pos"])
    return any(start <= position < end for start, end in spans)


def run_tests(config: dict) -> int:
    """The session's test command in the project environment (as cosmic-ray ran it); exit status."""
    command = ["uv", "run", "--group", "mutation", *shlex.split(config["test-command"])]
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, timeout=config["timeout"]
        ).returncode
    except subprocess.TimeoutExpired:
        return 1


def main(name: str) -> None:
    config = tomllib.loads((ROOT / ".ci/mutation" / f"{name}.toml").read_text())["cosmic-ray"]
    dump = subprocess.run(
        ["uv", "run", "--group", "mutation", "cosmic-ray", "dump", f".ci/mutation/{name}.sqlite"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    jobs = [json.loads(line) for line in dump.stdout.splitlines() if line.strip()]
    done = [(job, result) for job, result in jobs if result is not None]
    survivors = [job for job, result in done if result.get("test_outcome") == "survived"]
    if run_tests(config) != 0:
        raise SystemExit(f"the tests fail without any mutant: {config['test-command']}")
    alive, equivalent = [], []
    spans = annotation_spans(ROOT / config["module-path"])
    for job in survivors:
        mutation = job["mutations"][0]
        path = mutation["module_path"]
        if in_annotation(mutation, spans):
            equivalent.append(job)
            continue
        subprocess.run(["uv", "run", "--group", "mutation", "cosmic-ray", "apply", path,
                        mutation["operator_name"], str(mutation["occurrence"])], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            killed = run_tests(config) != 0
        except subprocess.TimeoutExpired:
            killed = True
        finally:
            subprocess.run(["git", "checkout", "--", path], cwd=ROOT, check=True)
        if not killed:
            alive.append(job)
            print(
                f"alive: {path}:{mutation['start_pos'][0]} {mutation['operator_name']} #{mutation['occurrence']}"
            )
    counted = len(done) - len(equivalent)
    print(
        f"{name}: {len(done)} mutants run, {len(equivalent)} inside annotations (equivalent), "
        f"{len(survivors) - len(equivalent)} others survived the session, {len(alive)} survive today's "
        f"tests: {100 * (1 - len(alive) / max(counted, 1)):.1f} % of {counted} killed"
    )


if __name__ == "__main__":
    main(sys.argv[1])
