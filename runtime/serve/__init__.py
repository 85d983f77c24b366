"""Serving: a ``Restorer`` behind NVIDIA Triton Inference Server (``dagl-serve``) and the client that uses it.

Needs the ``serve`` extra (``nvidia-pytriton``, which bundles Triton and ``tritonclient``); nothing
here is imported by the rest of the runtime, so a plain install never loads it.
"""
