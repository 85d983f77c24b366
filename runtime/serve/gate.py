"""The gate: ``dagl-serve``'s HTTP front, the one socket clients reach, with Triton behind it.

Triton trusts a request's body: a JSON body nested 100,000 levels deep overflows its stack and the
server exits, and the bundled Triton (2.51) has no setting that bounds a body's size or nesting. So
``dagl-serve`` starts Triton on a loopback port of its own, open only with a token the gate holds, and
the gate checks every request before a byte of it reaches Triton's parser:

* only the routes a client of the served model needs (health, metadata, its config and ``infer``);
* a ``Content-Length`` at most ``max_body``: ``max_values`` float32 values (one image at the pixel
  limit) plus :data:`MAX_JSON_BYTES`; chunked or compressed bodies (a zip bomb inflates past any
  length) are refused;
* the JSON part of an ``infer`` body at most :data:`MAX_JSON_BYTES`, nested at most
  :data:`MAX_JSON_DEPTH` deep (counted in one linear pass before it is parsed), and every input's
  declared shape at most ``max_values`` values: Triton allocates what a shape declares, so a
  100000x100000 shape with one value of data would end it;
* at most ``max_connections`` connections at once, each dropped after :data:`IDLE_TIMEOUT_S` of silence,
  and at most :data:`BODIES_IN_FLIGHT` largest bodies' worth of bytes held at once (beyond: "busy").

Triton's answers pass through, except a failure's error text: PyTriton sends the model's Python
traceback, and the gate keeps the one line a client needs (:func:`reason`).
"""

from __future__ import annotations

import http.client
import json
import math
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np

#: The largest JSON part of a request. dagl clients send images as binary data after a JSON header
#: of a few hundred bytes; an image sent as JSON numbers must fit here (about 100,000 samples).
MAX_JSON_BYTES = 1 << 20
#: The deepest JSON nesting passed on: an infer request needs 3 levels plus its data's rank.
MAX_JSON_DEPTH = 32
#: Seconds a connection may stay silent (while a request arrives, or between keep-alive requests).
IDLE_TIMEOUT_S = 60.0
#: Bytes of request bodies the gate holds at once, in largest bodies: more are refused as busy.
BODIES_IN_FLIGHT = 4
#: Prefix of the line an image the Restorer refused carries (inside PyTriton's traceback).
REFUSED = "dagl-serve refused the image: "



def routes(model: str) -> dict[str, re.Pattern[str]]:
    """The paths a client of ``model`` uses, by method: health, server and model metadata, model config, infer.

    Only the served model's name: Triton's own APIs share the ``/v2/models/`` prefix (``/v2/models/stats``)."""
    name = re.escape(model)
    return {"GET": re.compile(rf"/v2(/health/(live|ready))?|/v2/models/{name}(/versions/\d{{1,9}})?(/ready|/config)?"),
            "POST": re.compile(rf"/v2/models/{name}(/versions/\d{{1,9}})?/infer")}

#: Request headers Triton needs; everything else (a client's own token, encodings) stays at the gate.
_FORWARDED = ("Content-Type", "Inference-Header-Content-Length")
_RETURNED = ("Content-Type", "Inference-Header-Content-Length")


def json_depth(text: bytes) -> int:
    """The deepest ``[``/``{`` nesting of ``text`` outside JSON strings, in linear time and memory.

    Escaped backslashes and escaped quotes are removed first (left to right, as a JSON reader pairs
    them), so every quote left opens or closes a string; brackets inside strings are not counted.
    """
    plain = np.frombuffer(text.replace(b"\\\\", b"").replace(b'\\"', b""), np.uint8)
    in_string = np.cumsum(plain == ord('"')) % 2 == 1
    step = (np.isin(plain, (ord("["), ord("{"))).astype(np.int64) - np.isin(plain, (ord("]"), ord("}"))))
    step[in_string] = 0
    return int(np.cumsum(step).max(initial=0))


def reason(error: str) -> str:
    """Triton's error text as one line: the Restorer's refusal out of PyTriton's traceback, else the
    first exception a traceback names (the one the model raised), else the text's first line."""
    lines = [line.strip() for line in error.splitlines() if line.strip()]
    refused = [line[line.index(REFUSED):] for line in lines if REFUSED in line]
    if refused:
        return refused[-1]
    if "Traceback (most recent call last)" in error:
        raised = [match.group(1) for line in lines
                  if (match := re.match(r"^(?:\w+\.)*(\w+(?:Error|Exception|Interrupt): (?!Traceback)\S.*)$", line))]
        if raised:
            return f"dagl-serve failed the request: {raised[0]}"
    return lines[0] if lines else "unknown error"


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_inputs(header: bytes, max_values: int) -> None:
    """Refuse an infer request's JSON unless it parses and every input declares a shape of at most
    8 integers in [0, max_values] holding at most ``max_values`` values (``header`` is depth-checked)."""
    try:
        request = json.loads(header)
    except ValueError:
        raise _Refused(400, "the request's JSON does not parse") from None
    inputs = request.get("inputs") if isinstance(request, dict) else None
    if not isinstance(inputs, list) or not inputs:
        raise _Refused(400, "the request has no 'inputs' list")
    for tensor in inputs:
        shape = tensor.get("shape") if isinstance(tensor, dict) else None
        if not (isinstance(shape, list) and len(shape) <= 8
                and all(type(n) is int and 0 <= n <= max_values for n in shape)):  # no int64 overflow past a 0
            raise _Refused(400, f"every input needs a 'shape' of at most 8 integers in [0, {max_values:,}]")
        if math.prod(shape) > max_values:
            raise _Refused(413, f"an input of shape {shape} holds {math.prod(shape):,} values, over the "
                                f"{max_values:,} of one image at dagl-serve's pixel limit (see --max-pixels)")


class Gate(ThreadingHTTPServer):
    """A threaded HTTP server that checks requests and passes them to Triton at ``upstream``."""

    daemon_threads = True
    block_on_close = False

    def __init__(self, address: tuple[str, int], upstream: tuple[str, int], token_header: tuple[str, str],
                 model: str, max_values: int, max_connections: int = 64) -> None:
        self.routes = routes(model)
        self.upstream = upstream
        self.token_header = token_header
        self.max_values = max_values
        self.max_body = max_values * np.dtype(np.float32).itemsize + MAX_JSON_BYTES
        self._slots = threading.BoundedSemaphore(max_connections)
        self._held = 0
        self._held_lock = threading.Lock()
        super().__init__(address, _Handler)

    def hold(self, length: int) -> bool:
        """Reserve ``length`` bytes of the in-flight budget; False when they do not fit now."""
        with self._held_lock:
            if self._held + length > BODIES_IN_FLIGHT * self.max_body:
                return False
            self._held += length
            return True

    def release(self, length: int) -> None:
        with self._held_lock:
            self._held -= length

    def process_request(self, request, client_address) -> None:
        if not self._slots.acquire(blocking=False):  # full: close at once rather than queue sockets
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()


class _Handler(BaseHTTPRequestHandler):
    server: Gate
    protocol_version = "HTTP/1.1"
    timeout = IDLE_TIMEOUT_S
    server_version = "dagl-serve"
    _upstream: http.client.HTTPConnection | None = None

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        """Silent: a request log line per image is noise (Triton's own log keeps the traffic)."""

    def do_GET(self) -> None:
        self._pass("GET")

    def do_POST(self) -> None:
        self._pass("POST")

    def do_PUT(self) -> None:
        self._refuse(405, "method not allowed")

    do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_PUT

    def _refuse(self, status: int, message: str) -> None:
        self._answer(status, {"Content-Type": "application/json"}, json.dumps({"error": message}).encode())
        self.close_connection = True

    def _answer(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _check_length(self, method: str) -> int:
        """The request body's length, from its headers: known, uncompressed, within the limit."""
        if self.headers.get("Transfer-Encoding") or self.headers.get("Content-Encoding", "identity") != "identity":
            raise _Refused(411 if self.headers.get("Transfer-Encoding") else 415,
                           "dagl-serve takes bodies with a Content-Length, uncompressed")
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise _Refused(400, "bad Content-Length") from None
        if length < 0 or (method == "GET" and length):
            raise _Refused(400, "bad Content-Length")
        if length > self.server.max_body:
            raise _Refused(413, f"request body of {length:,} bytes exceeds dagl-serve's limit of "
                                f"{self.server.max_body:,} (one image at the pixel limit; see --max-pixels)")
        return length

    def _read_body(self, method: str, length: int) -> bytes:
        """The request's body, its JSON part checked for size and nesting before Triton parses it."""
        header = self.headers.get("Inference-Header-Content-Length")
        try:
            json_length = length if header is None else int(header)
        except ValueError:
            raise _Refused(400, "bad Inference-Header-Content-Length") from None
        if not 0 <= json_length <= length:
            raise _Refused(400, "bad Inference-Header-Content-Length")
        if json_length > MAX_JSON_BYTES:
            raise _Refused(413, f"JSON part of {json_length:,} bytes exceeds {MAX_JSON_BYTES:,}; send the image "
                                f"as binary data")
        body = self.rfile.read(length)
        if len(body) != length:
            raise _Refused(400, "request body ended early")
        if json_depth(body[:json_length]) > MAX_JSON_DEPTH:
            raise _Refused(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if method == "POST":  # the only POST routed is infer
            check_inputs(body[:json_length], self.server.max_values)
        return body

    def _pass(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            if not self.server.routes[method].fullmatch(path):
                raise _Refused(404, f"dagl-serve does not serve {method} {path[:200]}")
            length = self._check_length(method)
        except _Refused as refused:
            self._refuse(refused.status, str(refused))
            return
        if not self.server.hold(length):
            self._refuse(503, "dagl-serve is busy (too many large requests in flight); send it again later")
            return
        try:
            self._check_and_pass(method, path, length)
        finally:
            self.server.release(length)

    def _check_and_pass(self, method: str, path: str, length: int) -> None:
        try:
            body = self._read_body(method, length)
        except _Refused as refused:
            self._refuse(refused.status, str(refused))
            return
        headers = {key: self.headers[key] for key in _FORWARDED if self.headers.get(key)}
        headers[self.server.token_header[0]] = self.server.token_header[1]
        try:
            status, answer, returned = self._upstream_call(method, path, body, headers)
        except (OSError, http.client.HTTPException):
            self._refuse(502, "the Triton server behind dagl-serve does not answer")
            return
        if status >= 400 and answer.startswith(b"{"):
            answer, status = self._one_line(answer, status)
        self._answer(status, returned, answer)

    def _upstream_call(self, method: str, path: str, body: bytes,
                       headers: dict[str, str]) -> tuple[int, bytes, dict[str, str]]:
        """One request to Triton on this connection's own keep-alive connection (reopened once if stale)."""
        for attempt in (0, 1):
            if self._upstream is None:
                self._upstream = http.client.HTTPConnection(*self.server.upstream)
            try:
                self._upstream.request(method, path, body=body or None, headers=headers)
                response = self._upstream.getresponse()
                answer = response.read()
                returned = {key: response.headers[key] for key in _RETURNED if response.headers.get(key)}
                return response.status, answer, returned
            except (OSError, http.client.HTTPException):
                self._upstream.close()
                self._upstream = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    @staticmethod
    def _one_line(answer: bytes, status: int) -> tuple[bytes, int]:
        """Triton's ``{"error": ...}`` with the error as one line; a refused image is the client's fault (400)."""
        try:
            error = json.loads(answer)["error"]
        except (ValueError, KeyError, TypeError):
            return answer, status
        line = reason(str(error))
        return json.dumps({"error": line}).encode(), 400 if line.startswith(REFUSED) else status

    def finish(self) -> None:
        super().finish()
        if self._upstream is not None:
            self._upstream.close()


def start_gate(gate: Gate) -> threading.Thread:
    """Serve ``gate`` from a daemon thread (stopped with ``gate.shutdown()``)."""
    thread = threading.Thread(target=gate.serve_forever, kwargs={"poll_interval": 0.2}, name="dagl-serve-gate",
                              daemon=True)
    thread.start()
    return thread

