"""Data sources selected as `scheme:PATH` (`bundled:basicmotions`, `uci-har:DIR`, `pamap2:DIR`, ...),
one module per format.

Every loader returns a `WindowSet`; groups are recordings or subjects so splits never leak.
"""

from __future__ import annotations

from collections.abc import Callable

from edgekit.config import DataConfig
from edgekit.data.record import WindowSet
from edgekit.data.sources.generated import load_synthetic
from edgekit.data.sources.pamap2 import load_pamap2
from edgekit.data.sources.tabular import load_csv, load_npy
from edgekit.data.sources.ts import load_bundled, load_ts
from edgekit.data.sources.uci_har import load_uci_har
from edgekit.errors import DataError

SOURCES: dict[str, Callable[[str, DataConfig], WindowSet]] = {
    "bundled": load_bundled,
    "synthetic": load_synthetic,
    "uci-har": load_uci_har,
    "pamap2": load_pamap2,
    "ts": load_ts,
    "npy": load_npy,
    "csv": load_csv,
}


def load_source(spec: str, config: DataConfig | None = None) -> WindowSet:
    """Load windows from a `scheme:PATH` spec such as `bundled:basicmotions` or `pamap2:/data/Protocol`."""
    config = config or DataConfig()
    scheme, _, rest = spec.partition(":")
    if scheme not in SOURCES:
        raise DataError(
            f"unknown data source '{scheme}'; use one of: {', '.join(f'{s}:' for s in SOURCES)}"
        )
    return SOURCES[scheme](rest, config)
