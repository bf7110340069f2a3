"""Synthetic windows with known structure (`synthetic:n=...`), for tests and demos."""

from __future__ import annotations

import inspect

from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.synthetic import make_synthetic
from edgekit.errors import DataError


def load_synthetic(spec: str, config: DataConfig) -> WindowSet:
    """`synthetic` or `synthetic:n=400,length=127,noise=1.5,nan_fraction=0.01,flat_channels=1`."""
    options: dict[str, float | int] = {"seed": config.seed}
    known = list(inspect.signature(make_synthetic).parameters)
    for item in filter(None, spec.split(",")):
        key, _, value = item.partition("=")
        key = key.strip()
        if key not in known:
            raise DataError(f"synthetic: unknown option '{key}'; use {', '.join(known)}")
        try:
            options[key] = float(value) if any(ch in value for ch in ".e") else int(value)
        except ValueError as err:
            raise DataError(f"synthetic: option {key}={value!r} is not a number") from err
    return make_synthetic(**options)  # type: ignore[arg-type]
