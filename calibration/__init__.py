"""Precision decisions for FP16: activation ranges on real crops and which nodes stay float32.

INT8 calibration is deliberately absent (not needed for the FP16 engines shipped now).
"""
