#!/usr/bin/env python3
"""The package's files, checked before a script uses them: manifest.json and reference_io.npz must
be of the versions these scripts read (edgekit writes both, with these constants)."""

import json
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE_SCHEMA = "edgekit.hailo/1"  # manifest.json's "schema"
REFERENCE_SCHEMA = 1  # reference_io.npz's schema_version


def load_package(here: Path) -> tuple[dict[str, Any], Any]:
    """manifest.json and reference_io.npz, refused if written for another version of the scripts."""
    manifest = json.loads((here / "manifest.json").read_text())
    if manifest.get("schema") != PACKAGE_SCHEMA:
        raise SystemExit(
            f"error: manifest.json is {manifest.get('schema')!r}, this script reads {PACKAGE_SCHEMA}; "
            "export the package again with `edgekit export RUN --target hailo`"
        )
    reference = np.load(here / manifest["evaluation"]["reference_io"])
    if int(reference["schema_version"]) != REFERENCE_SCHEMA:
        raise SystemExit(
            f"error: reference_io.npz has schema_version {int(reference['schema_version'])}, "
            f"this script reads {REFERENCE_SCHEMA}; export the package again"
        )
    return manifest, reference
