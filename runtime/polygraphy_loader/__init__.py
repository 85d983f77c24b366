"""The file ``polygraphy run --data-loader-script`` loads, alone in its folder.

Polygraphy imports a data-loader script by putting the script's folder first on ``sys.path``. In
``dagl/runtime`` that would put every module there (``io``-like names such as ``memory``, ``compare``) ahead
of the standard library and the real packages; this folder holds nothing that can shadow anything.
"""
