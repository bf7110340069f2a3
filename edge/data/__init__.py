"""IMU data: sources, quality checks, leakage-free splits, normalisation and the Hailo layout."""

from edgekit.data.prepare import PreparedData, prepare_data, to_hailo_layout
from edgekit.data.qa import quality_report, repair_non_finite
from edgekit.data.record import WindowSet
from edgekit.data.sources import load_source
from edgekit.data.split import assign_splits, split_groups

__all__ = [
    "PreparedData",
    "WindowSet",
    "assign_splits",
    "load_source",
    "prepare_data",
    "quality_report",
    "repair_non_finite",
    "split_groups",
    "to_hailo_layout",
]
