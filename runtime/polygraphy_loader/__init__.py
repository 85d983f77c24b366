"""The file ``polygraphy run --data-loader-script`` loads, alone in its folder.

Polygraphy imports a data-loader script by putting the script's folder first on ``sys.path``. In
``dagl/runtime`` that would let ``runtime/torch`` and ``runtime/onnxruntime`` shadow the real
``torch`` and ``onnxruntime``; this folder holds nothing that can shadow anything.
"""
