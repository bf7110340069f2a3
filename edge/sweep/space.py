"""The search space: YAML over the same keys as `--set`, each a range or a list of choices.

```yaml
train.lr: {low: 0.001, high: 0.01, log: true}   # float range (log scale)
train.batch_size: {low: 8, high: 64, step: 8}  # integer range (int bounds, or step)
model.size: {choices: [tiny, small, medium]}   # any values a --set would take, lists included
```

Every key and every value a trial could draw is checked against the config before the sweep starts,
with the one-line errors of `--set` ("did you mean"). Optuna's categorical choices are scalars, so
list values travel as their JSON text and are read back before they reach the config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from edgekit.config import RunConfig, load_config, read_yaml
from edgekit.errors import ConfigError

DEFAULT_SPACE = "sweep_space"  # configs/sweep_space.yaml
RANGE_KEYS = {"low", "high", "log", "step"}


@dataclass(frozen=True)
class Dimension:
    """One key of the space: a numeric range or a list of choices."""

    key: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    integer: bool = False
    choices: tuple[Any, ...] = ()

    def distribution(self) -> Any:
        """The Optuna distribution of this dimension (choices as scalars or JSON text)."""
        from optuna.distributions import (
            CategoricalDistribution,
            FloatDistribution,
            IntDistribution,
        )

        if self.choices:
            return CategoricalDistribution([encode(c) for c in self.choices])
        assert self.low is not None and self.high is not None
        if self.integer:
            step = int(self.step or 1)
            return IntDistribution(int(self.low), int(self.high), log=self.log, step=step)
        return FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def extremes(self) -> list[Any]:
        """The values whose acceptance by the config stands for the whole dimension."""
        if self.choices:
            return list(self.choices)
        if self.integer:
            return [int(self.low or 0), int(self.high or 0)]
        return [self.low, self.high]


def encode(value: Any) -> Any:
    """A choice as Optuna stores it: scalars as they are, lists as JSON text."""
    return json.dumps(value) if isinstance(value, list | tuple | dict) else value


def decode(value: Any) -> Any:
    """The inverse of `encode`."""
    if isinstance(value, str) and value[:1] in "[{":
        return json.loads(value)
    return value


@dataclass(frozen=True)
class SearchSpace:
    """The dimensions of one sweep, in file order."""

    dimensions: tuple[Dimension, ...]
    source: str

    @property
    def keys(self) -> list[str]:
        return [d.key for d in self.dimensions]

    def distributions(self) -> dict[str, Any]:
        return {d.key: d.distribution() for d in self.dimensions}

    def overrides(self, params: dict[str, Any]) -> list[str]:
        """A trial's parameters as `--set` items."""
        return [f"{key}={json.dumps(decode(params[key]))}" for key in self.keys if key in params]

    def config_for(self, base: RunConfig, params: dict[str, Any]) -> RunConfig:
        """The base config with a trial's parameters applied (and validated)."""
        return load_config(None, self.overrides(params), base=base)


def _dimension(key: str, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: {key}: expected a mapping such as {{low: 0.001, high: 0.01, log: true}} "
            f"or {{choices: [3, 5, 7]}}, got {spec!r}"
        )
    if "choices" in spec:
        extra = set(spec) - {"choices"}
        choices = spec["choices"]
        if extra or not isinstance(choices, list) or not choices:
            raise ConfigError(
                f"{where}: {key}: give either choices (a non-empty list) or low/high, not "
                f"{sorted(spec)}"
            )
        return Dimension(key, choices=tuple(choices))
    unknown = set(spec) - RANGE_KEYS
    if unknown or not {"low", "high"} <= set(spec):
        raise ConfigError(
            f"{where}: {key}: a range needs low and high (optional log, step), got {sorted(spec)}"
        )
    low, high, log, step = spec["low"], spec["high"], spec.get("log", False), spec.get("step")
    numbers = [v for v in (low, high, step) if v is not None]
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in numbers):
        raise ConfigError(f"{where}: {key}: low, high and step must be numbers, got {spec}")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: {key}: log must be true or false, got {log!r}")
    if not low < high or (log and low <= 0) or (step is not None and step <= 0):
        raise ConfigError(
            f"{where}: {key}: need low < high (and low > 0 with log, step > 0), got {spec}"
        )
    if log and step is not None:
        raise ConfigError(f"{where}: {key}: a log range takes no step; drop one of them")
    integer = all(isinstance(v, int) for v in numbers)
    return Dimension(key, float(low), float(high), log, step, integer)


def parse_space(values: Any, where: str) -> SearchSpace:
    """A space from its YAML mapping; every value a trial could draw is checked by the config."""
    if not isinstance(values, dict) or not values:
        raise ConfigError(
            f"{where}: expected a mapping of config keys to ranges or choices, e.g. "
            "'train.lr: {low: 0.001, high: 0.01, log: true}'"
        )
    dimensions = []
    for key, spec in values.items():
        if not isinstance(key, str) or key.count(".") != 1:
            raise ConfigError(f"{where}: {key!r}: keys are section.key as in --set, e.g. train.lr")
        dimension = _dimension(key, spec, where)
        for value in dimension.extremes():
            try:
                load_config(None, [f"{key}={json.dumps(value)}"])
            except ConfigError as err:
                raise ConfigError(f"{where}: {err}") from None
        dimensions.append(dimension)
    return SearchSpace(tuple(dimensions), where)


def load_space(path: str | Path | None) -> SearchSpace:
    """The space in `path`, or the default space (configs/sweep_space.yaml) when None."""
    from edgekit.config import preset_path

    file = Path(path) if path is not None else preset_path(DEFAULT_SPACE)
    return parse_space(read_yaml(file), f"space file {file}")


def space_yaml(space: SearchSpace) -> str:
    """The space as YAML (written into the sweep folder beside its trials)."""
    values: dict[str, Any] = {}
    for d in space.dimensions:
        if d.choices:
            values[d.key] = {"choices": list(d.choices)}
        else:
            assert d.low is not None and d.high is not None
            cast = int if d.integer else float
            spec: dict[str, Any] = {"low": cast(d.low), "high": cast(d.high)}
            spec.update({"log": True} if d.log else {})
            spec.update({"step": d.step} if d.step is not None else {})
            values[d.key] = spec
    return yaml.safe_dump(values, sort_keys=False)
