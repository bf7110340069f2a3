"""Leakage-free splits: whole groups stratified by class, the source's official split with a val
cut, or chronological cuts inside each recording.

Every mode returns one split index per window (0 train, 1 val, 2 test, GAP for windows dropped
because they share samples with a window of another split) plus warnings for classes that could
not reach every split.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from edgekit.config import DataConfig, has_val_split
from edgekit.data.record import WindowSet
from edgekit.errors import DataError

SPLITS = ("train", "val", "test")
GAP = -1
# When a class has too few groups for every split, it goes to these first: a class must be
# trained on, then it should be tested; validation is the one that can do without it.
COVER_PRIORITY = (0, 2, 1)
# Weight of the whole-split size term beside the per-class terms (each class counts the same,
# so a 1 % class is placed as carefully as a 60 % one).
TOTAL_WEIGHT = 0.5


@dataclass
class SplitAssignment:
    """Which windows went to train, val and test, and how (saved as splits.json)."""

    split_of: np.ndarray  # (N,) int: 0/1/2 or GAP
    warnings: list[str] = field(default_factory=list)
    info: dict[str, Any] = field(default_factory=dict)  # extra facts for splits.json


def split_groups(
    y: np.ndarray, groups: np.ndarray, fractions: tuple[float, ...], seed: int
) -> np.ndarray:
    """Assign whole groups to splits (0/1/2), stratified per class.

    Classes are interleaved, the rarest first in each round, each class's groups largest first.
    Each group goes to the split whose squared deviation from the per-class targets (relative to
    the class size) grows least, except that a class is sent to a split it has not reached yet
    once its remaining groups are only just enough to reach every split (train, then test, then
    val when there are too few).
    """
    rng = np.random.default_rng(seed)
    unique_groups, group_index = np.unique(groups, return_inverse=True)
    num_groups, num_classes = len(unique_groups), int(y.max()) + 1
    counts = np.zeros((num_groups, num_classes))
    np.add.at(counts, (group_index, y), 1)
    fractions_array = np.asarray(fractions, dtype=np.float64)
    active = [s for s in COVER_PRIORITY if fractions_array[s] > 0]
    class_totals = counts.sum(0)
    targets = class_totals[:, None] * fractions_array[None, :]  # (K, S)
    total_targets = class_totals.sum() * fractions_array
    present = counts > 0
    groups_per_class = present.sum(0)
    # the splits each class must reach, in priority order, as far as its groups allow
    required = [active[: min(len(active), int(n))] for n in groups_per_class]
    rarity = np.where(present, groups_per_class[None, :], np.iinfo(np.int64).max)
    key_class, sizes = rarity.argmin(1), counts.sum(1)
    # Within each group's key (rarest) class: largest first, ties in seeded random order. Classes
    # then advance at the same pace (rank / groups of the class), so every split fills evenly.
    progress = np.zeros(num_groups)
    shuffled = rng.permutation(num_groups)
    for k in np.unique(key_class):
        members = shuffled[key_class[shuffled] == k]
        members = members[np.argsort(-sizes[members], kind="stable")]
        progress[members] = np.arange(len(members)) / len(members)
    order = np.lexsort((shuffled.argsort(), rarity.min(1), progress))
    remaining = groups_per_class.astype(np.int64)
    assigned = np.zeros_like(targets)
    total_assigned = np.zeros(3)
    scale = np.maximum(class_totals, 1.0)[:, None] ** 2
    assignment = np.zeros(num_groups, dtype=np.int64)
    for g in order:
        classes = np.flatnonzero(present[g])
        forced_hits = np.zeros(3)
        for k in classes:
            uncovered = [s for s in required[k] if assigned[k, s] == 0]
            if uncovered and remaining[k] <= len(uncovered):
                forced_hits[uncovered] += 1
        before = (assigned[classes] - targets[classes]) ** 2
        after = (assigned[classes] + counts[g, classes, None] - targets[classes]) ** 2
        cost = ((after - before) / scale[classes]).sum(0)
        total_after = (total_assigned + sizes[g] - total_targets) ** 2
        cost += (
            TOTAL_WEIGHT
            * (total_after - (total_assigned - total_targets) ** 2)
            / max(1.0, class_totals.sum()) ** 2
        )
        candidates = sorted(active, key=lambda s: (-forced_hits[s], cost[s], s))
        split = candidates[0]
        assignment[g] = split
        assigned[:, split] += counts[g]
        total_assigned[split] += sizes[g]
        remaining[classes] -= 1
    _repair_coverage(assignment, present, required)
    return assignment[group_index]


def _repair_coverage(
    assignment: np.ndarray, present: np.ndarray, required: list[list[int]]
) -> None:
    """Move single groups into splits a class still misses, when the move uncovers nothing else.

    Groups holding several classes (a subject who did many activities) can make a full cover
    impossible; this fixes the cases greedy placement missed, and the coverage check reports the rest.
    """

    def holders(k: int, s: int) -> int:
        return int((present[:, k] & (assignment == s)).sum())

    for _ in range(present.shape[1] * 3):
        missing = [
            (k, s) for k in range(present.shape[1]) for s in required[k] if holders(k, s) == 0
        ]
        if not missing:
            return
        moved = False
        for k, s in missing:
            for g in np.flatnonzero(present[:, k]):
                current = int(assignment[g])
                if all(
                    current not in required[j] or holders(int(j), current) > 1
                    for j in np.flatnonzero(present[g])
                ):
                    assignment[g] = s
                    moved = True
                    break
        if not moved:
            return


def split_official(windows: WindowSet, config: DataConfig) -> SplitAssignment:
    """The source's test split stays test; its train part is cut into train and val by class."""
    if windows.official_test is None:
        raise DataError(
            f"{windows.source} defines no official test split; use data.split_mode=group or time"
        )
    split_of = np.full(len(windows.y), 2)
    rest = ~windows.official_test
    if not rest.any():
        raise DataError(
            f"{windows.source}: every window is in the official test split; add the train files"
        )
    info: dict[str, Any] = {"official_test_windows": int((~rest).sum())}
    if config.cv_folds:
        split_of[rest] = cross_validation_fold(
            windows.y[rest], windows.groups[rest], config.cv_folds, config.cv_fold, config.seed
        )
        info["cv_fold"] = f"{config.cv_fold} of {config.cv_folds}"
        return SplitAssignment(split_of, info=info)
    train_share = config.split_fractions[0] / (
        config.split_fractions[0] + config.split_fractions[1]
    )
    inner = split_groups(
        windows.y[rest], windows.groups[rest], (train_share, 1 - train_share, 0.0), config.seed
    )
    split_of[rest] = inner
    return SplitAssignment(split_of, info=info)


def cross_validation_fold(
    y: np.ndarray, groups: np.ndarray, folds: int, fold: int, seed: int
) -> np.ndarray:
    """Stratified K-fold by whole groups: 1 (val) for the windows of fold `fold`, else 0 (train).

    Each class's groups (a group counts for its most frequent class) are dealt in seeded order
    round the folds, continuing where the previous class stopped, so the folds of one seed
    partition the windows: every window is val in exactly one of the K runs, and fold sizes and
    class shares differ by at most one group."""
    rng = np.random.default_rng(seed)
    unique_groups, group_index = np.unique(groups, return_inverse=True)
    counts = np.zeros((len(unique_groups), int(y.max()) + 1), dtype=np.int64)
    np.add.at(counts, (group_index, y), 1)
    group_class = counts.argmax(1)
    fold_of = np.zeros(len(unique_groups), dtype=np.int64)
    dealt = 0
    for k in np.unique(group_class):
        members = rng.permutation(np.flatnonzero(group_class == k))
        fold_of[members] = (dealt + np.arange(len(members))) % folds
        dealt += len(members)
    return (fold_of[group_index] == fold).astype(np.int64)


def split_time(windows: WindowSet, config: DataConfig) -> SplitAssignment:
    """Chronological cuts inside each (group, class) by `split_fractions`: the first windows by
    start train, the next val (none with a val share of 0), the last test; windows sharing samples
    across a cut are dropped (train gives them up first, then val), so no sample is in two splits."""
    if len(np.unique(windows.groups)) == len(windows.groups):
        raise DataError(
            f"{windows.source}: data.split_mode=time needs recordings of several windows each "
            "(groups), but every window is its own group; use data.split_mode=group"
        )
    length = windows.window_length
    if windows.starts is not None:
        starts, how = windows.starts, "window starts from the source"
    else:  # windows in file order, data.window_stride apart within their group
        starts = np.zeros(len(windows.y), dtype=np.int64)
        for group in np.unique(windows.groups):
            members = np.flatnonzero(windows.groups == group)
            starts[members] = np.arange(len(members)) * config.window_stride
        how = f"file order, data.window_stride={config.window_stride} samples apart"
    cut = np.cumsum(config.split_fractions)[:2]
    has_val = int(has_val_split(config))
    split_of = np.zeros(len(windows.y), dtype=np.int64)
    for group in np.unique(windows.groups):
        in_group = windows.groups == group
        for k in np.unique(windows.y[in_group]):
            members = np.flatnonzero(in_group & (windows.y == k))
            members = members[np.argsort(starts[members], kind="stable")]
            n = len(members)
            if n < 3:
                continue  # too short to cut: all train
            val_at = min(max(1, round(cut[0] * n)), n - 1 - has_val)
            test_at = min(max(val_at + has_val, round(cut[1] * n)), n - 1)
            split_of[members[val_at:test_at]] = 1
            split_of[members[test_at:]] = 2
    dropped = _drop_shared_samples(split_of, windows.groups, starts, length)
    return SplitAssignment(
        split_of,
        info={"starts": how, "gap_windows_dropped": dropped, "window_length": length},
    )


def _drop_shared_samples(
    split_of: np.ndarray, groups: np.ndarray, starts: np.ndarray, length: int
) -> int:
    """Mark GAP every window that shares a sample with a kept window of another split."""
    dropped = 0
    for group in np.unique(groups):
        members = np.flatnonzero(groups == group)
        members = members[np.argsort(starts[members], kind="stable")]
        # the windows after each one that start before it ends (starts sorted)
        overlap_ends = np.searchsorted(starts[members], starts[members] + length)
        for i, a in enumerate(members):
            for b in members[i + 1 : overlap_ends[i]]:
                if split_of[a] == GAP or split_of[b] == GAP or split_of[a] == split_of[b]:
                    continue
                # train gives up its window first, then val: test is what we measure on
                loser = a if split_of[a] < split_of[b] else b
                split_of[loser] = GAP
                dropped += 1
    return dropped


def assign_splits(windows: WindowSet, config: DataConfig) -> SplitAssignment:
    """Split per `data.split_mode`, then check every class against the splits it reached."""
    if config.split_mode == "official":
        result = split_official(windows, config)
    elif config.split_mode == "time":
        result = split_time(windows, config)
    else:
        result = SplitAssignment(
            split_groups(windows.y, windows.groups, config.split_fractions, config.seed)
        )
    result.warnings += check_class_coverage(
        windows, result.split_of, config.split_mode, has_val_split(config)
    )
    return result


def check_class_coverage(
    windows: WindowSet, split_of: np.ndarray, mode: str, val_wanted: bool
) -> list[str]:
    """Refuse a class that can't be trained on (or, outside official mode, tested); warn for val
    when there is a val split."""
    warnings = []
    for k, name in enumerate(windows.class_names):
        of_class = windows.y == k
        reached = {s for s in range(3) if (of_class & (split_of == s)).any()}
        n_windows, n_groups = int(of_class.sum()), len(np.unique(windows.groups[of_class]))
        if n_windows == 0:
            continue
        groups = f"{n_groups} group" if n_groups == 1 else f"{n_groups} groups"
        unit = "windows" if n_groups == n_windows else f"windows in {groups}"
        if 0 not in reached or (mode != "official" and 2 not in reached):
            missing = " and ".join(SPLITS[s] for s in (0, 2) if s not in reached)
            raise DataError(
                f"class '{name}' has too few windows/groups ({n_windows} {unit}) to appear in the "
                f"{missing} split; add recordings of it, drop the class, or use "
                f"{'data.split_mode=time' if mode == 'group' else 'more data'}"
            )
        if val_wanted and 1 not in reached:
            warnings.append(
                f"class '{name}' ({n_windows} {unit}) has no window in the val split: "
                "early stopping and checkpoint selection can't see it"
            )
        if 2 not in reached:
            warnings.append(f"class '{name}' has no window in the official test split")
    return warnings
