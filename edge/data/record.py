"""The one record every data source returns."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

import numpy as np
from edgekit.errors import DataError


@dataclass
class WindowSet:
    """IMU windows `X (N, C, T) float32`, labels, and the group (recording/subject) of each window."""

    X: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    class_names: list[str]
    channel_names: list[str]
    fs: float
    source: str
    provenance: dict[str, str] = field(default_factory=dict)
    # bool per window, where the source defines a test split
    official_test: np.ndarray | None = None
    starts: np.ndarray | None = None  # first sample of each window within its group's recording
    channel_groups: dict[str, list[str]] = field(default_factory=dict)  # e.g. imu_hand -> names
    notes: dict[str, object] = field(default_factory=dict)  # what loading did (length policy, ...)

    def __post_init__(self) -> None:
        if self.X.ndim != 3:
            raise DataError(
                f"{self.source}: windows must be 3-D (N, C, T), got shape {self.X.shape}"
            )
        if len(self.X) == 0:
            raise DataError(f"{self.source}: the data set is empty; check the path and filters")
        if self.X.shape[1] == 0:
            raise DataError(
                f"{self.source}: the windows have no channels (shape {self.X.shape}); "
                "give X as (N, C, T) with C >= 1"
            )
        if self.X.shape[2] < 2:
            raise DataError(
                f"{self.source}: window length T={self.X.shape[2]} is < 2; use longer windows"
            )
        if len(self.y) != len(self.X) or len(self.groups) != len(self.X):
            raise DataError(
                f"{self.source}: {len(self.X)} windows but {len(self.y)} labels and {len(self.groups)} groups"
            )
        self.X = np.ascontiguousarray(self.X, dtype=np.float32)
        self.y = np.asarray(self.y, dtype=np.int64)
        self.groups = np.asarray(self.groups).astype(str)
        if self.y.min() < 0 or self.y.max() >= len(self.class_names):
            raise DataError(f"{self.source}: labels must be in 0..{len(self.class_names) - 1}")
        if len(self.channel_names) != self.X.shape[1]:
            raise DataError(
                f"{self.source}: {self.X.shape[1]} channels but {len(self.channel_names)} names"
            )
        if self.starts is not None:
            self.starts = np.asarray(self.starts, dtype=np.int64)
            if self.starts.shape != self.y.shape:
                raise DataError(
                    f"{self.source}: {len(self.X)} windows but {len(self.starts)} window starts"
                )

    @property
    def window_length(self) -> int:
        return self.X.shape[2]

    def subset(self, mask: np.ndarray) -> WindowSet:
        """The windows selected by `mask` (bool or indices), every per-window field kept aligned."""
        return dataclasses.replace(
            self,
            X=self.X[mask],
            y=self.y[mask],
            groups=self.groups[mask],
            official_test=None if self.official_test is None else self.official_test[mask],
            starts=None if self.starts is None else self.starts[mask],
        )

    def with_channels(self, index: list[int]) -> WindowSet:
        """Only the channels at `index`, in that order; channel groups shrink to what is kept."""
        names = [self.channel_names[i] for i in index]
        groups = {
            group: [n for n in members if n in names]
            for group, members in self.channel_groups.items()
        }
        return dataclasses.replace(
            self,
            X=self.X[:, index, :],
            channel_names=names,
            channel_groups={g: m for g, m in groups.items() if m},
        )
