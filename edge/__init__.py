"""edgekit: IMU classifiers from raw sensor windows to a validated model on an edge device."""

__version__ = "0.1.0"
