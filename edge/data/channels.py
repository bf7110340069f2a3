"""Channel selection by name, glob (`hand_*`) or a source's named group (`imu_hand`)."""

from __future__ import annotations

import difflib
import fnmatch

from edgekit.data.record import WindowSet
from edgekit.errors import DataError


def resolve_channels(
    patterns: tuple[str, ...] | list[str],
    channel_names: list[str],
    channel_groups: dict[str, list[str]],
    key: str = "data.channels",
) -> list[int]:
    """Indices of the channels the patterns name, in the data's channel order; unknown names fail."""
    chosen: set[str] = set()
    for pattern in patterns:
        if pattern in channel_groups:
            matched = list(channel_groups[pattern])
        else:
            matched = fnmatch.filter(channel_names, pattern)
        if not matched:
            known = [*channel_groups, *channel_names]
            close = difflib.get_close_matches(pattern, known, n=1)
            hint = f"did you mean '{close[0]}'?" if close else f"known: {', '.join(known)}"
            raise DataError(f"{key}: '{pattern}' matches no channel or channel group; {hint}")
        chosen.update(matched)
    return [i for i, name in enumerate(channel_names) if name in chosen]


def select_channels(windows: WindowSet, patterns: tuple[str, ...]) -> WindowSet:
    """The windows with only the selected channels (all of them when `patterns` is empty)."""
    if not patterns:
        return windows
    index = resolve_channels(patterns, windows.channel_names, windows.channel_groups)
    return windows.with_channels(index)
