"""dagl-serve's gate, against a stand-in for Triton that records what reaches it: hostile requests are
refused in one line before a byte reaches the upstream parser, good ones pass with the token, and
PyTriton's tracebacks come back as one line. No Triton needed, so this runs in every environment."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from dagl.runtime.serve.gate import MAX_JSON_DEPTH, REFUSED, Gate, json_depth, reason, start_gate

TOKEN = ("triton-access-token", "s3cret")
MAX_VALUES = 1024


def reference_depth(value: object) -> int:
    """Nesting depth of a parsed JSON value, computed independently of the gate's byte scan."""
    if isinstance(value, dict):
        return 1 + max((reference_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((reference_depth(v) for v in value), default=0)
    return 0


def random_json(rng: np.random.Generator, depth: int) -> object:
    kind = rng.integers(0, 4 if depth < 6 else 2)
    if kind == 0:  # strings full of what a naive scan would count or be fooled by
        return "".join(rng.choice(list('ab[]{}"\\\n/'), size=rng.integers(0, 8)))
    if kind == 1:
        return float(rng.normal())
    if kind == 2:
        return [random_json(rng, depth + 1) for _ in range(rng.integers(0, 4))]
    return {f"k{i}]\"{{": random_json(rng, depth + 1) for i in range(rng.integers(0, 4))}


def test_json_depth_matches_a_parser_on_tricky_strings():
    rng = np.random.default_rng(0)
    for _ in range(300):
        value = random_json(rng, 0)
        assert json_depth(json.dumps(value).encode()) == reference_depth(value)


def test_json_depth_on_hostile_bodies():
    assert json_depth(b"[" * 200_000 + b"]" * 200_000) == 200_000
    assert json_depth(b'"' + b"\\" * 99_999 + b'"[') == 0  # an odd run escapes the quote: the bracket is in the string
    assert json_depth(b'"\\\\"' + b"[" * 5) == 5  # an escaped backslash does not escape the quote


def test_reason_is_one_line():
    traceback = (f"Failed to process the request(s) for model 'dagl-jpeg_0_0', message: TritonModelException: Model "
                 f"execute error: Traceback (most recent call last):\n  File \"/x.py\", line 1, in f\n"
                 f"ValueError: {REFUSED}is 3x3 px\n\nAt:\n  /x.py(1): f\n")
    assert reason(traceback) == f"{REFUSED}is 3x3 px"
    failed = ("Failed: TritonModelException: Model execute error: Traceback (most recent call last):\n  File \"x\"\n"
              "    raise e\ndagl.runtime.serve.server.StoppingError: dagl-serve is stopping\n\nAt:\n  x(1)\n")
    assert reason(failed) == "dagl-serve failed the request: StoppingError: dagl-serve is stopping"
    assert reason("[request id: <id_unknown>] Exceeds maximum queue size") == \
        "[request id: <id_unknown>] Exceeds maximum queue size"


class Upstream(BaseHTTPRequestHandler):
    """Triton's stand-in: records each request; answers {"ok": true}, or PyTriton's traceback for a versioned path."""

    protocol_version = "HTTP/1.1"
    seen: list[tuple[str, str, dict[str, str], bytes]] = []

    def log_message(self, *args: object) -> None:
        pass

    def _handle(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.seen.append((self.command, self.path, dict(self.headers), body))
        if "versions" in self.path:
            status, answer = 500, {"error": f"Traceback (most recent call last):\n  File x\nValueError: {REFUSED}too "
                                            f"small\n\nAt:\n"}
        else:
            status, answer = 200, {"ok": True}
        data = json.dumps(answer).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = _handle


@pytest.fixture
def gate():
    Upstream.seen = []
    upstream = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    threading.Thread(target=upstream.serve_forever, daemon=True).start()
    front = Gate(("127.0.0.1", 0), upstream.server_address, TOKEN, "dagl-jpeg", max_values=MAX_VALUES,
                 max_connections=8)
    start_gate(front)
    yield front
    front.shutdown()
    front.server_close()
    upstream.shutdown()
    upstream.server_close()


def send(gate: Gate, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, dict]:
    connection = http.client.HTTPConnection(*gate.server_address, timeout=30)
    try:
        connection.request(method, path, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, json.loads(response.read())
    finally:
        connection.close()


INFER = "/v2/models/dagl-jpeg/infer"
NESTED = b'{"inputs":[{"name":"image","shape":[1,8,8],"datatype":"FP32","data":' + b"[" * 100_000 + b"]" * 100_000 + \
    b"}]}"


@pytest.mark.parametrize(("method", "path", "body", "headers", "status", "words"), [
    ("POST", INFER, b"[" * 1000 + b"]" * 1000, {}, 400, "nested deeper"),
    ("POST", INFER, b"{}", {"Content-Length": str(10**9)}, 413, "exceeds dagl-serve's limit"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[1,1000,1000],"datatype":"FP32","data":[0]}]}', {},
     413, "holds 1,000,000 values"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[1,100000,100000],"datatype":"FP32","data":[0]}]}', {},
     400, "at most 8 integers"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[1,33,32],"datatype":"FP32","data":[0]}]}', {},
     413, "holds 1,056 values, over the 1,024"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[-1,8],"datatype":"FP32","data":[0]}]}', {},
     400, "at most 8 integers in [0, 1,024]"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[1.5e300],"datatype":"FP32","data":[0]}]}', {},
     400, "at most 8 integers"),
    ("POST", INFER, b'{"inputs":[{"name":"image","shape":[0,99999999999999999999],"datatype":"FP32"}]}', {},
     400, "at most 8 integers"),
    ("POST", INFER, b'{"inputs":[]}', {}, 400, "no 'inputs' list"),
    ("POST", INFER, b"\xff\xfe garbage", {}, 400, "does not parse"),
    ("POST", INFER, b"", {}, 400, "does not parse"),
    ("POST", INFER, b"{}", {"Content-Encoding": "gzip"}, 415, "uncompressed"),
    ("POST", INFER, b"{}", {"Content-Length": "x"}, 400, "bad Content-Length"),
    ("POST", INFER, b"{}", {"Inference-Header-Content-Length": "99"}, 400, "Inference-Header-Content-Length"),
    ("POST", "/v2/repository/models/dagl-jpeg/unload", b"{}", {}, 404, "does not serve"),
    ("POST", "/v2/systemsharedmemory/region/x/register", b"{}", {}, 404, "does not serve"),
    ("GET", "/v2/logging", None, {}, 404, "does not serve"),
    ("GET", "/v2/models/stats", None, {}, 404, "does not serve"),  # Triton's statistics, not a model
    ("GET", "/v2/models/other/ready", None, {}, 404, "does not serve"),
    ("DELETE", INFER, None, {}, 405, "not allowed"),
])
def test_hostile_requests_never_reach_triton(gate, method, path, body, headers, status, words):
    answer_status, answer = send(gate, method, path, body, headers)
    assert answer_status == status and words in answer["error"] and "\n" not in answer["error"]
    assert Upstream.seen == []


def test_a_deeply_nested_body_is_refused_before_triton_sees_it(gate):
    """The issue's request: 100,000 levels in an input's data (200 kB, within the size limit)."""
    status, answer = send(gate, "POST", INFER, NESTED, {"Content-Type": "application/json"})
    assert (status, answer) == (400, {"error": f"JSON nested deeper than {MAX_JSON_DEPTH} levels"})
    assert Upstream.seen == []


def test_good_requests_pass_with_the_token_and_only_the_needed_headers(gate):
    header = b'{"inputs":[{"name":"image","shape":[1,2,2],"datatype":"FP32","parameters":{"binary_data_size":16}}]}'
    body = header + b"\x00" * 16
    status, answer = send(gate, "POST", INFER, body, {"Inference-Header-Content-Length": str(len(header)),
                                                      "triton-access-token": "forged", "X-Other": "1"})
    assert (status, answer) == (200, {"ok": True})
    assert send(gate, "GET", "/v2/health/ready") == (200, {"ok": True})
    (method, path, headers, seen_body), _ = Upstream.seen
    at_the_limit = b'{"inputs":[{"name":"image","shape":[1,32,32],"datatype":"FP32","data":[0]}]}'
    assert send(gate, "POST", INFER, at_the_limit) == (200, {"ok": True})  # 1,024 values: exactly one image
    assert (method, path, seen_body) == ("POST", INFER, body)
    assert headers["triton-access-token"] == TOKEN[1] and "X-Other" not in headers
    assert headers["Inference-Header-Content-Length"] == str(len(header))


def test_a_traceback_from_triton_comes_back_as_one_line(gate):
    versioned = "/v2/models/dagl-jpeg/versions/1/infer"  # the stand-in fails these
    status, answer = send(gate, "POST", versioned, b'{"inputs":[{"name":"image","shape":[1]}]}')
    assert (status, answer) == (400, {"error": f"{REFUSED}too small"})


def test_connections_beyond_the_cap_are_closed_and_the_gate_serves_after(gate):
    """8 idle connections (a slowloris) fill the gate's 8 slots: the 9th is closed at once, unanswered;
    once they go, requests are answered again."""
    import socket
    import time

    idle = [socket.create_connection(gate.server_address, timeout=30) for _ in range(8)]
    try:
        time.sleep(0.5)  # the gate has accepted them all
        with pytest.raises((OSError, http.client.HTTPException)):
            send(gate, "GET", "/v2/health/ready")
    finally:
        for sock in idle:
            sock.close()
    deadline = time.monotonic() + 30
    while True:  # their handler threads see the close and give the slots back
        try:
            assert send(gate, "GET", "/v2/health/ready") == (200, {"ok": True})
            break
        except (OSError, http.client.HTTPException):
            assert time.monotonic() < deadline, "the gate never served again"
            time.sleep(0.2)
