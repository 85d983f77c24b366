"""Serve a :class:`~dagl.runtime.restorer.Restorer` from NVIDIA Triton Inference Server (``nvidia-pytriton``).

Triton is the server (its HTTP endpoint, dynamic batcher, queue policy and health checks); PyTriton
binds a Python function to it as a model. The function is a ``Restorer``, so a request gets what
``dagl-infer`` gives the same array: the same tiling, ensemble, input guards and output checks.

Clients never reach Triton directly: the gate (:mod:`.gate`) listens on ``HOST:PORT``, bounds every
request's size and nesting before Triton parses it, and passes it to Triton on a loopback port that
answers only requests carrying the gate's token.

Triton's dynamic batcher only puts requests of one shape into a batch; the batch's images are then
restored one after another by the one ``Restorer`` (its tiles already go ``batch`` at a time through
the network). The gate bounds a request to one image at the pixel limit of files. A request that
fails the input guards fails its batch: every request in it gets the one-line reason as its error,
none gets a wrong image. A full queue refuses requests at once (Triton's ``max_queue_size``), so an
overloaded server answers every request and stays up. On stop, a running restoration ends at its next tile pass, so a signal ends
the server within seconds.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import sysconfig
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from dagl.artefact import artefact_stem
from dagl.errors import DaglError
from dagl.images import io

from ..restorer import Restorer
from .gate import REFUSED, Gate, start_gate

#: The tensors of the served model: an image in the network's layout, (H, W) or (H, W, C) float32.
INPUT = "image"
OUTPUT = "restored"
DEFAULT_PORT = 8000
DEFAULT_MAX_BATCH = 4
#: How long Triton holds a request for batch-mates of its shape (microseconds): a 256x256 image
#: takes seconds on a CPU, so a few milliseconds cost nothing and let concurrent clients share.
DEFAULT_QUEUE_DELAY_US = 5000
#: Requests Triton queues per model before it refuses new ones with "Exceeds maximum queue size".
DEFAULT_MAX_QUEUE = 64


class ServeError(DaglError):
    """Triton could not be started or bound (a missing extra, a port in use), or it stopped on its own."""


class StoppingError(Exception):
    """The server is stopping: the restoration in progress ends here, and its request gets this error."""


@dataclass(frozen=True)
class ServeOptions:
    """Where the server listens and how its batcher and queue behave."""

    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    max_batch: int = DEFAULT_MAX_BATCH
    queue_delay_us: int = DEFAULT_QUEUE_DELAY_US
    max_queue: int = DEFAULT_MAX_QUEUE
    #: Where Triton's log (and every stray line of the serving processes) goes; ``None``: this process's
    #: stdout and stderr (``dagl-serve --verbose``).
    log_file: Path | None = None


def model_name(task: str, sigma: int | None = None) -> str:
    """The served model's name: the artefacts' stem (``dagl-<task>``, ``dagl-denoise-s<sigma>``)."""
    return artefact_stem(task, sigma)


def infer_function(restorer: Restorer, stopping: threading.Event) -> Callable[..., dict[str, np.ndarray]]:
    """PyTriton's batched callable: (N, H, W[, C]) images in, the N restorations out, in order.

    Once ``stopping`` is set, the restoration in progress ends at its next tile pass."""
    from pytriton.decorators import batch

    def unless_stopping(done: int) -> None:
        if stopping.is_set():
            raise StoppingError("dagl-serve is stopping")

    @batch
    def infer(image: np.ndarray) -> dict[str, np.ndarray]:
        try:
            return {OUTPUT: np.stack([restorer(one, unless_stopping) for one in image])}
        except DaglError as exc:  # a user's array or an unusable output: the line, without our traceback
            raise ValueError(f"{REFUSED}{exc}") from None

    return infer


def python_library_env(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``LD_LIBRARY_PATH`` with this interpreter's own ``libpython`` first.

    Triton's Python-backend stub links ``libpython3.X.so.1.0`` by name and runs this interpreter's
    standard library. Where the interpreter is not the system's (pyenv, a conda or venv of another
    patch release), the loader finds the system's library first and the stub fails to start the
    model (``'_thread.RLock' object has no attribute '_recursion_count'`` from 3.11.7's library on
    3.11.2's runtime). Putting the running interpreter's library directory first makes the two match.
    """
    environ = dict(os.environ if environ is None else environ)
    libdir = sysconfig.get_config_var("LIBDIR")
    if sysconfig.get_config_var("Py_ENABLE_SHARED") and libdir and Path(libdir).is_dir():
        paths = [p for p in environ.get("LD_LIBRARY_PATH", "").split(os.pathsep) if p and p != libdir]
        environ["LD_LIBRARY_PATH"] = os.pathsep.join([libdir, *paths])
    return environ


def check_port_free(host: str, port: int) -> None:
    """Refuse a port something already listens on: PyTriton would wait a minute for that other
    program to answer as Triton, then fail with a timeout that does not name the port."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as trial:
        try:
            trial.bind((host, port))
        except OSError as exc:
            raise ServeError(f"cannot listen on {host}:{port} ({exc.strerror or exc}); choose another --port "
                             f"or --host", exit_code=2) from None


def require_pytriton():
    """PyTriton's classes, or one line saying how to install them (checked before a model loads)."""
    try:
        from pytriton.model_config import DynamicBatcher, ModelConfig, QueuePolicy, Tensor
        from pytriton.triton import Triton, TritonConfig
    except ImportError as exc:
        raise ServeError(f"serving needs nvidia-pytriton ({exc.name or exc} is missing); install it with "
                         f"pip install 'dagl[serve]'") from None
    return DynamicBatcher, ModelConfig, QueuePolicy, Tensor, Triton, TritonConfig


@contextmanager
def output_to(log_file: Path) -> Iterator[None]:
    """Everything written to this process's stdout and stderr, and its children's, goes to ``log_file``,
    except what Python code here writes to ``sys.stderr`` (the command's own lines, a traceback).

    Triton, its Python-backend stub and multiprocessing's resource tracker print to the file
    descriptors they inherit (Triton's log arrives through PyTriton's ``print``), so the descriptors
    themselves are redirected; ``sys.stderr`` is re-bound to a copy of the original.
    """
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    log = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    stderr = sys.stderr
    try:
        os.dup2(log, 1)
        os.dup2(log, 2)
        sys.stderr = open(os.dup(saved[1]), "w", buffering=1, encoding=stderr.encoding, errors="backslashreplace")
        yield
    finally:
        sys.stdout.flush()
        if sys.stderr is not stderr:
            sys.stderr.close()
            sys.stderr = stderr
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for fd in (*saved, log):
            os.close(fd)


def free_loopback_port() -> int:
    """A TCP port nothing listens on at 127.0.0.1 now (for Triton, behind the gate)."""
    with socket.socket() as trial:
        trial.bind(("127.0.0.1", 0))
        return trial.getsockname()[1]


def serve(restorer: Restorer, options: ServeOptions = ServeOptions(),
          on_ready: Callable[[str, str], None] | None = None) -> None:
    """Serve ``restorer`` as model ``dagl-<task>`` on ``http://HOST:PORT`` until interrupted.

    Triton listens on a free loopback port that answers only the gate's token; the gate takes the
    clients on HOST:PORT (:mod:`.gate`). No gRPC, no metrics port. ``on_ready(url, model)`` is called
    once the model is loaded and requests are answered. Raises :class:`ServeError` if Triton stops on
    its own (its log says why); an exception raised in this thread (a signal's) stops both.
    """
    DynamicBatcher, ModelConfig, QueuePolicy, Tensor, Triton, TritonConfig = require_pytriton()
    from pytriton.triton import TRITON_ACCESS_HEADER, VALID_TRITON_ENDPOINTS, TritonSecurityConfig

    os.environ.update(python_library_env())
    shape = (-1, -1) if restorer.channels == 1 else (-1, -1, restorer.channels)
    triton_port = free_loopback_port()
    config = TritonConfig(http_address="127.0.0.1", http_port=triton_port, allow_grpc=False, allow_metrics=False,
                          log_verbose=0, exit_timeout_secs=5)
    token = secrets.token_urlsafe(32)  # health stays open: PyTriton's start-up wait asks without a token
    security = TritonSecurityConfig(access_token=token,
                                    restricted_endpoints=sorted(VALID_TRITON_ENDPOINTS - {"health"}))
    batcher = DynamicBatcher(max_queue_delay_microseconds=options.queue_delay_us,
                             default_queue_policy=QueuePolicy(max_queue_size=options.max_queue))
    name = model_name(restorer.task, restorer.sigma)
    check_port_free(options.host, options.port)
    stopping = threading.Event()
    with restorer, ExitStack() as stack:
        if options.log_file is not None:  # PyTriton's messages too: dagl-serve's own lines say what matters
            stack.enter_context(output_to(options.log_file))
            handler = logging.StreamHandler(sys.stdout)
            logging.getLogger("pytriton").addHandler(handler)
            stack.callback(logging.getLogger("pytriton").removeHandler, handler)
        try:
            triton = stack.enter_context(Triton(config=config, security_config=security))
            triton.bind(model_name=name, infer_func=infer_function(restorer, stopping),
                        inputs=[Tensor(name=INPUT, dtype=np.float32, shape=shape)],
                        outputs=[Tensor(name=OUTPUT, dtype=np.float32, shape=shape)],
                        config=ModelConfig(max_batch_size=options.max_batch, batcher=batcher), strict=True)
            triton.run()
        except Exception as exc:  # pytriton's start-up failures (server died, timed out) have no common base
            lines = str(exc).strip().splitlines()
            raise ServeError(f"Triton did not start on 127.0.0.1:{triton_port}: "
                             f"{lines[-1] if lines else type(exc).__name__}") from None
        try:
            gate = Gate((options.host, options.port), ("127.0.0.1", triton_port), (TRITON_ACCESS_HEADER, token), name,
                        max_values=io.max_pixels() * restorer.channels,
                        max_connections=options.max_queue + options.max_batch + 16)
        except OSError as exc:
            raise ServeError(f"cannot listen on {options.host}:{options.port} ({exc.strerror or exc})",
                             exit_code=2) from None
        stack.callback(gate.server_close)
        start_gate(gate)
        stack.callback(gate.shutdown)
        stack.callback(stopping.set)  # first on the way out: the restoration in progress ends, Triton stops
        if on_ready is not None:
            on_ready(f"http://{options.host}:{options.port}", name)
        triton.serve()
        raise ServeError("the Triton server stopped on its own" +
                         (f"; its log: {options.log_file}" if options.log_file else ""))
