"""One error hierarchy: every user mistake is an EdgekitError with a one-line 'what + fix' message."""


class EdgekitError(Exception):
    """Base class; the CLI prints the message on one line and exits with `exit_code`."""

    exit_code = 2


class ConfigError(EdgekitError):
    """A config file, key, or value is wrong."""


class DataError(EdgekitError):
    """Input data is missing, malformed, or fails quality checks."""


class CheckpointError(EdgekitError):
    """A checkpoint is missing, corrupt, or from another architecture."""


class TrainingError(EdgekitError):
    """Training cannot go on (e.g. the loss became NaN)."""

    exit_code = 3


class ArtifactError(EdgekitError):
    """A run artifact is missing, unrecorded, damaged or of another schema than this edgekit reads."""


class ExportError(EdgekitError):
    """An export cannot be produced or fails its readiness checks."""


class ParityError(EdgekitError):
    """A parity comparison exceeded its declared tolerance."""

    exit_code = 4


class DeviceError(EdgekitError):
    """The device link failed: port missing, no answer, wrong protocol or model."""

    exit_code = 5


class GateError(EdgekitError):
    """On-device results failed a verification gate."""

    exit_code = 6


class RunLockError(EdgekitError):
    """Another edgekit process is writing the same run folder."""

    exit_code = 7


class StorageError(EdgekitError):
    """An artifact cannot be written: disk full, read-only or permission denied."""

    exit_code = 8
