"""Precision decisions: FP16 activation ranges on real crops and which nodes stay float32 (``policy.py``,
``ranges.py``), and INT8 post-training quantization calibrated on held-out training crops (``int8.py``,
recorded in ``int8_calibration.json``).
"""
