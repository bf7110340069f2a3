"""Activation calibration, bias correction and the representative set shared with target compilers."""
