"""Restore images through a ``dagl-serve`` Triton server: the client half, on ``tritonclient``'s HTTP API.

:class:`RemoteRestorer` is called like :class:`~dagl.runtime.restorer.Restorer` (an (H, W[, C])
float32 array in, its restoration out) so ``dagl-infer --server`` keeps every file rule of a local
run and writes the same file. The input guards run here as well, so a bad array is refused before
it travels; every server-side failure (a full queue, a refused image, a server gone) is one line.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import numpy as np

from dagl import get_config
from dagl.errors import DaglError

from ..restorer import check_input
from .gate import REFUSED
from .server import INPUT, OUTPUT, model_name

#: Seconds a request may take, queueing included: on a CPU a 256x256 image takes tens of seconds,
#: and a queue of them minutes.
DEFAULT_TIMEOUT_S = 900.0
_CONNECT_TIMEOUT_S = 10.0


class ServerError(DaglError):
    """The server is not there, does not serve the task, or refused or failed a request."""


class ServerBusyError(ServerError):
    """Triton's queue for the model is full: the request was refused unprocessed; send it again later."""


def _client_module():
    try:
        import tritonclient.http as client
    except ImportError as exc:
        raise ServerError(f"--server needs tritonclient ({exc.name or exc} is missing); install it with "
                          f"pip install 'dagl[serve]'") from None
    return client


def server_address(url: str) -> str:
    """``http://127.0.0.1:8000`` -> ``127.0.0.1:8000`` (tritonclient's form); only plain HTTP is spoken."""
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.scheme != "http" or not parts.hostname or parts.path not in ("", "/"):
        raise ServerError(f"--server {url!r} is not http://HOST:PORT")
    try:
        port = parts.port or 80
    except ValueError:
        raise ServerError(f"--server {url!r} has no valid port") from None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{host}:{port}"


def error_line(exc: Exception) -> str:
    """A server error as one line: the Restorer's reason out of the traceback PyTriton sends, else
    the first line of Triton's own message (a full queue, a wrong shape), else the exception's name."""
    text = exc.message() if callable(getattr(exc, "message", None)) else str(exc)
    lines = [line.strip() for line in str(text or "").splitlines() if line.strip()]
    refused = [line.split(REFUSED, 1)[1] for line in lines if REFUSED in line]
    line = refused[-1] if refused else lines[0] if lines else type(exc).__name__
    return re.sub(r"^\[request id: [^]]*\]\s*", "", line)


class RemoteRestorer:
    """Restore float32 images in [0, 1] with the ``dagl-<task>`` model of a Triton server at ``url``."""

    backend = "triton"

    def __init__(self, url: str, task: str, sigma: int | None = None, timeout: float = DEFAULT_TIMEOUT_S) -> None:
        client = _client_module()
        self.url = url
        self.task = task
        self.channels = get_config(task).channels
        self.model = model_name(task, get_config(task).check_sigma(sigma))
        self._client = client
        self._address = server_address(url)
        self._server = client.InferenceServerClient(self._address, connection_timeout=min(timeout, _CONNECT_TIMEOUT_S),
                                                    network_timeout=timeout)
        self._check_served()

    def _check_served(self) -> None:
        try:
            ready = self._server.is_server_ready() and self._server.is_model_ready(self.model)
        except Exception as exc:  # connection refused, timeouts, bad answers: no common base class
            raise ServerError(f"no Triton server answers at {self.url} ({error_line(exc)})") from None
        if not ready:
            raise ServerError(f"{self.url} does not serve model {self.model} (start it with dagl-serve for "
                              f"--task {self.task})")

    def __enter__(self) -> RemoteRestorer:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        self._server.close()

    def tiles_for(self, height: int, width: int) -> int:
        """Progress steps per image: the server tiles, so one step, reported when the image returns."""
        return 1

    def __call__(self, image: np.ndarray, progress=None) -> np.ndarray:
        """Send ``image``, return the server's restoration (float32, the input's shape)."""
        image = check_input(image, self.channels, self.task)
        request = self._client.InferInput(INPUT, [1, *image.shape], "FP32")
        request.set_data_from_numpy(image[None], binary_data=True)
        wanted = [self._client.InferRequestedOutput(OUTPUT, binary_data=True)]
        try:
            result = self._server.infer(self.model, [request], outputs=wanted)
        except Exception as exc:  # tritonclient's InferenceServerException, socket errors, timeouts
            line = error_line(exc)
            if "queue size" in line.lower() or "is busy" in line:
                raise ServerBusyError(f"{self.url} refused the image, its queue is full ({line}); send it again "
                                      f"later") from None
            raise ServerError(f"{self.url}: {line}") from None
        out = result.as_numpy(OUTPUT)
        if out is None or out.shape != (1, *image.shape) or out.dtype != np.float32:
            raise ServerError(f"{self.url} answered {None if out is None else (out.dtype, out.shape)} for a "
                              f"{image.shape} image")
        if progress is not None:
            progress(1)
        return out[0]
