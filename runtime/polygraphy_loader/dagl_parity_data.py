"""``polygraphy run ... --data-loader-script <this file>:load_data``: test-set crops as feeds.

The loader itself is :func:`dagl.runtime.parity_data.load_data` (see there for the ``DAGL_*``
variables that choose the dataset); ``python -m dagl.runtime.parity_data`` prints this file's path.
"""

from dagl.runtime.parity_data import load_data

__all__ = ["load_data"]
