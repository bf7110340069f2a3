#!/usr/bin/env python3
"""The package's files, checked before a script uses them: manifest.json and reference_io.npz must
be of the versions these scripts read (edgekit writes both, with these constants)."""

import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

PACKAGE_SCHEMA = "edgekit.hailo/1"  # manifest.json's "schema"
REFERENCE_SCHEMA = 1  # reference_io.npz's schema_version


AGAIN = "copy the package again, or export it again with `edgekit export RUN --target hailo`"


def load_package(here: Path) -> tuple[dict[str, Any], Any]:
    """manifest.json and reference_io.npz, refused if damaged or written for another version of the
    scripts (one line each: these scripts run on the DFC machine, far from edgekit)."""
    try:
        manifest = json.loads((here / "manifest.json").read_text())
    except (OSError, ValueError) as err:
        raise SystemExit(
            f"error: {here / 'manifest.json'} cannot be read ({err}); {AGAIN}"
        ) from err
    schema = manifest.get("schema") if isinstance(manifest, dict) else None
    if schema != PACKAGE_SCHEMA:
        raise SystemExit(
            f"error: manifest.json is {schema!r}, this script reads {PACKAGE_SCHEMA}; "
            "export the package again with `edgekit export RUN --target hailo`"
        )
    path = here / manifest["evaluation"]["reference_io"]
    try:
        reference = dict(np.load(path))
        version = int(reference["schema_version"])
    except (OSError, ValueError, KeyError, zipfile.BadZipFile) as err:
        raise SystemExit(f"error: {path} cannot be read ({err!r}); {AGAIN}") from err
    if version != REFERENCE_SCHEMA:
        raise SystemExit(
            f"error: reference_io.npz has schema_version {version}, "
            f"this script reads {REFERENCE_SCHEMA}; export the package again"
        )
    return manifest, reference
