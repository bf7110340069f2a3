"""Brevitas quantizer presets, layer factories, BatchNorm folding and the integer-only reference."""
