"""The run directory, the contract between stages: the Run view of it, atomic artifacts and the
manifest, checkpoints, the stage transaction and the one-writer lock."""
