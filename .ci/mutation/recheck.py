"""Re-run the surviving mutants of a cosmic-ray session against today's tests, without redoing the
whole session: python .ci/mutation/recheck.py NAME   (NAME.toml and NAME.sqlite in .ci/mutation/).

Prints each mutant still alive (file:line, operator) and the new survival rate; the equivalent
mutants listed in .ci/mutation/README.md are expected among them.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def main(name: str) -> None:
    config = tomllib.loads((ROOT / ".ci/mutation" / f"{name}.toml").read_text())["cosmic-ray"]
    dump = subprocess.run(
        ["uv", "run", "--group", "mutation", "cosmic-ray", "dump", f".ci/mutation/{name}.sqlite"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    )  # fmt: skip
    jobs = [json.loads(line) for line in dump.stdout.splitlines() if line.strip()]
    done = [(job, result) for job, result in jobs if result is not None]
    survivors = [job for job, result in done if result.get("test_outcome") == "survived"]
    alive = []
    for job in survivors:
        mutation = job["mutations"][0]
        path = mutation["module_path"]
        subprocess.run(["uv", "run", "--group", "mutation", "cosmic-ray", "apply", path,
                        mutation["operator_name"], str(mutation["occurrence"])], cwd=ROOT, check=True,
                       capture_output=True)  # fmt: skip
        try:
            tests = subprocess.run(shlex.split(config["test-command"]), cwd=ROOT, capture_output=True,
                                   timeout=config["timeout"])  # fmt: skip
            killed = tests.returncode != 0
        except subprocess.TimeoutExpired:
            killed = True
        finally:
            subprocess.run(["git", "checkout", "--", path], cwd=ROOT, check=True)
        if not killed:
            alive.append(job)
            print(
                f"alive: {path}:{mutation['start_pos'][0]} {mutation['operator_name']} #{mutation['occurrence']}"
            )
    print(
        f"{name}: {len(done)} mutants run, {len(survivors)} survived the session, {len(alive)} survive "
        f"today's tests: {100 * (1 - len(alive) / max(len(done), 1)):.1f} % killed"
    )


if __name__ == "__main__":
    main(sys.argv[1])
