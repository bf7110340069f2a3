"""Options shared by the edgekit commands, and the flags -> config step."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from edgekit.config import RunConfig

DEFAULT_RUN = "runs/latest"

config_option = click.option(
    "--config", "config_file", help="YAML file or preset name (default, tiny) overriding defaults."
)
set_option = click.option(
    "--set",
    "overrides",
    multiple=True,
    metavar="SECTION.KEY=VALUE",
    help="Override one config value; repeatable.",
)
data_option = click.option(
    "--data",
    "data_spec",
    metavar="SCHEME:PATH",
    help="bundled:basicmotions, synthetic:..., uci-har:DIR, pamap2:DIR, ts:PATH, npy:DIR, csv:FILE.",
)
out_option = click.option(
    "--out",
    "run_dir",
    type=click.Path(path_type=Path),
    default=DEFAULT_RUN,
    show_default=True,
    help="Run directory.",
)
run_argument = click.argument(
    "run_dir", metavar="RUN", type=click.Path(path_type=Path), default=DEFAULT_RUN, required=False
)


def build_config(
    config_file: str | None,
    overrides: tuple[str, ...],
    data_spec: str | None = None,
    base: RunConfig | None = None,
    **section_values: Any,
) -> RunConfig:
    """defaults (or `base`, a run's own config) < YAML < --data and typed flags < --set items."""
    from edgekit.config import load_config

    extra = [f"data.source={json.dumps(data_spec)}"] if data_spec else []
    extra += [
        f"{key}={json.dumps(value)}" for key, value in section_values.items() if value is not None
    ]
    return load_config(config_file, [*extra, *overrides], base=base)


device_run_option = click.option(
    "--run",
    "run_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Run directory with an onnx export.",
)
backend_option = click.option(
    "--backend",
    type=click.Choice(["onnxruntime", "int-reference"]),
    default="onnxruntime",
    show_default=True,
    help="Model runtime on the device side.",
)


@contextmanager
def writing(run_dir: Path, command: str, create: bool = False) -> Iterator[None]:
    """Hold the run's lock while a command writes into it (see edgekit.rundir.lock).

    `create` makes the folder first (train, pipeline); for the other stages a missing run is left
    to the stage, whose own check names it.
    """
    from edgekit.errors import ConfigError
    from edgekit.rundir.lock import run_lock

    if create:
        try:
            run_dir.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise ConfigError(
                f"cannot create the run folder {run_dir} ({err.strerror}); choose another --out"
            ) from err
    if not run_dir.is_dir():
        yield
        return
    with run_lock(run_dir, command):
        yield
