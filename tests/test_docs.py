"""Every relative link in the README and the docs points at a file of the repository (a link to an
ignored or missing file is a broken promise to the reader)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [
    "README.md",
    "bench/README.md",
    *sorted(p.relative_to(ROOT).as_posix() for p in (ROOT / "docs").glob("*.md")),
]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def tracked() -> set[str]:
    """Files git tracks or would add (untracked, not ignored): what a clone holds."""
    listed = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return set(listed)


@pytest.mark.parametrize("page", PAGES)
def test_relative_links_resolve_to_files_in_the_repository(page: str) -> None:
    files = tracked()
    folders = {str(Path(f).parent) for f in files}
    broken = []
    for target in LINK.findall((ROOT / page).read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # web addresses and anchors in the same page
        path = (ROOT / page).parent / target.split("#")[0]
        relative = path.resolve().relative_to(ROOT).as_posix()
        if relative not in files and relative not in folders:
            broken.append(target)
    assert broken == [], f"{page} links to files a clone does not have: {broken}"


def test_the_link_check_sees_a_broken_link(tmp_path: Path) -> None:
    assert LINK.findall("see [the results](bench/results.md) and [site](https://x.org)") == [
        "bench/results.md",
        "https://x.org",
    ]
    assert "bench/results.md" not in tracked()  # written by the bench, ignored by git
