"""Precision decisions: FP16 overflow guards and INT8 calibration."""
