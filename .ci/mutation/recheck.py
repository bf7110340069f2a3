"""Re-run the surviving mutants of a cosmic-ray session against today's tests, without redoing the
whole session:  uv run --group mutation python .ci/mutation/recheck.py NAME
(NAME.toml and NAME.sqlite in .ci/mutation/).

Prints each mutant still alive with its diff, and the kill rate. A survivor is counted apart as
equivalent (no test can tell it from the original) when it lies inside a type annotation (every
module has `from __future__ import annotations`, so annotations are never evaluated) or when it is
exactly one of the substitutions listed under `[[equivalent]]` in NAME.toml, each with its reason.
Equivalence is only ever decided for mutants today's tests do not kill.
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
BIN = Path(sys.executable).parent  # the project environment's scripts (cosmic-ray, pytest)


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


def squeeze(text: str) -> str:
    return "".join(text.split())


def listed_equivalent(before: str, after: str, rules: list[dict]) -> dict | None:
    """The `[[equivalent]]` rule whose substitution turns `before` into `after`, if any."""
    for rule in rules:
        old, new = squeeze(rule["old"]), squeeze(rule["new"])
        narrowed = rule.get("line", "") in before and old in squeeze(before)
        if narrowed and squeeze(before).replace(old, new, 1) == squeeze(after):
            return rule
    return None


def run_tests(config: dict) -> bool:
    """Whether the session's test command passes in the project environment (as cosmic-ray ran it)."""
    command = shlex.split(config["test-command"])
    if command[0] == "python":
        command[0] = sys.executable
    try:
        done = subprocess.run(command, cwd=ROOT, capture_output=True, timeout=config["timeout"])
    except subprocess.TimeoutExpired:
        return False
    return done.returncode == 0


def mutated_line(path: str, mutation: dict) -> tuple[str, str]:
    """Apply the mutant, return the (original, mutated) source lines, and restore the file."""
    subprocess.run([str(BIN / "cosmic-ray"), "apply", path, mutation["operator_name"],
                    str(mutation["occurrence"])], cwd=ROOT, check=True, capture_output=True)  # fmt: skip
    diff = subprocess.run(["git", "diff", "-U0", "--", path], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout  # fmt: skip
    lines = diff.splitlines()
    before = " ".join(x[1:].strip() for x in lines if x.startswith("-") and not x.startswith("---"))
    after = " ".join(x[1:].strip() for x in lines if x.startswith("+") and not x.startswith("+++"))
    return before, after


def main(name: str) -> None:
    settings = tomllib.loads((ROOT / ".ci/mutation" / f"{name}.toml").read_text())
    config, rules = settings["cosmic-ray"], settings.get("equivalent", [])
    dump = subprocess.run([str(BIN / "cosmic-ray"), "dump", f".ci/mutation/{name}.sqlite"],
                          cwd=ROOT, capture_output=True, text=True, check=True)  # fmt: skip
    jobs = [json.loads(line) for line in dump.stdout.splitlines() if line.strip()]
    done = [(job, result) for job, result in jobs if result is not None]
    survivors = [job for job, result in done if result.get("test_outcome") == "survived"]
    if not run_tests(config):
        raise SystemExit(f"the tests fail without any mutant: {config['test-command']}")
    alive, annotations, listed = [], 0, 0
    spans = annotation_spans(ROOT / config["module-path"])
    for job in survivors:
        mutation = job["mutations"][0]
        path = mutation["module_path"]
        if in_annotation(mutation, spans):
            annotations += 1
            continue
        try:
            before, after = mutated_line(path, mutation)
            killed = not run_tests(config)
        finally:
            subprocess.run(["git", "checkout", "--", path], cwd=ROOT, check=True)
        if killed:
            continue
        if listed_equivalent(before, after, rules):
            listed += 1
            continue
        alive.append(job)
        print(f"alive: {path}:{mutation['start_pos'][0]} {mutation['operator_name']}"
              f" #{mutation['occurrence']}\n    - {before}\n    + {after}")  # fmt: skip
    counted = len(done) - annotations - listed
    print(
        f"{name}: {len(done)} mutants run; equivalent: {annotations} inside annotations, {listed} "
        f"listed in {name}.toml; {len(survivors) - annotations} survived the session, {len(alive)} "
        f"survive today's tests: {100 * (1 - len(alive) / max(counted, 1)):.1f} % of {counted} killed"
    )


if __name__ == "__main__":
    main(sys.argv[1])
