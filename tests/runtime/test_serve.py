"""dagl-serve: a real Triton server (nvidia-pytriton) on a free loopback port, and its clients.

The server runs as a user starts it (``dagl-serve jpeg ...`` in its own process group), serving the
shipped jpeg weights with small tiles so CI stays fast. What is asserted: a restoration through it
is the very array the local Restorer (and so dagl-infer) gives; a refused or overflowing request is
one line and the server keeps serving; a client killed mid-request, or a load of hostile requests,
leaves it serving; SIGTERM during a request stops it within seconds with one line. The client and
URL rules are tested without a server. Every wait is bounded; the server is killed at the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from dagl.images.io import write_image
from dagl.runtime.auto import choose_auto, cpu_capabilities, open_restorer
from dagl.runtime.cli import main as infer_main
from dagl.runtime.serve.client import ServerError, error_line, server_address
from dagl.runtime.serve.gate import REFUSED
from dagl.runtime.serve.server import python_library_env

#: The server's restoration settings; the local reference uses the same.
SETTINGS = {"tile": 16, "overlap": 4, "threads": 1}
START_TIMEOUT_S = 240
REQUEST_TIMEOUT_S = 300
#: The test server's pixel limit (--max-pixels): small, so an image over it is cheap to send.
MAX_PIXELS = 10_000
READY = b"dagl-serve: serving dagl-jpeg"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_server_address_accepts_http_host_port_only():
    assert server_address("http://127.0.0.1:8000") == "127.0.0.1:8000"
    assert server_address("localhost:8010/") == "localhost:8010"
    assert server_address("http://[::1]:9000") == "[::1]:9000"
    for bad in ("https://127.0.0.1:8000", "http://127.0.0.1:8000/v2", "http://127.0.0.1:x", "http://"):
        with pytest.raises(ServerError, match="--server"):
            server_address(bad)


class FakeTritonError(Exception):
    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text

    def message(self) -> str:
        return self.text


def test_error_line_finds_the_reason_in_a_traceback():
    traceback = f"Failed to process\nTraceback (most recent call last):\n  File x\nValueError: {REFUSED}is 3x3 px\n\nAt:\n"
    assert error_line(FakeTritonError(traceback)) == "is 3x3 px"
    assert error_line(FakeTritonError("[request id: <id_unknown>] Exceeds maximum queue size")) == \
        "Exceeds maximum queue size"
    assert error_line(FakeTritonError("")) == "FakeTritonError"


def test_the_stub_finds_this_interpreters_libpython():
    import sysconfig

    env = python_library_env({"LD_LIBRARY_PATH": "/opt/x"})
    if sysconfig.get_config_var("Py_ENABLE_SHARED"):
        assert env["LD_LIBRARY_PATH"].split(os.pathsep) == [sysconfig.get_config_var("LIBDIR"), "/opt/x"]
    else:
        assert env["LD_LIBRARY_PATH"] == "/opt/x"


@pytest.mark.parametrize(("args", "message"), [
    (["jpeg", "--server", "http://127.0.0.1:1", "--tile", "64"], "--tile is the server's setting"),
    (["jpeg", "--server", "http://127.0.0.1:1", "--ensemble"], "--ensemble is the server's setting"),
    (["model.onnx", "--server", "http://127.0.0.1:1"], "MODEL is the task the server serves"),
])
def test_infer_refuses_local_options_beside_server(args, message, tmp_path):
    source = write_image(tmp_path / "x.png", np.zeros((16, 16), np.float32), 8)
    result = CliRunner().invoke(infer_main, [args[0], str(source), *args[1:], "-o", str(tmp_path / "out.png")])
    assert result.exit_code == 2 and "Traceback" not in result.stderr
    assert message in result.stderr and result.stderr.count("\n") == 1
    assert not (tmp_path / "out.png").exists()


def test_serve_without_pytriton_is_one_line(monkeypatch):
    from dagl.runtime.serve.cli import main as serve_main

    monkeypatch.setitem(sys.modules, "pytriton.model_config", None)  # as if the serve extra were missing
    result = CliRunner().invoke(serve_main, ["jpeg", "--port", str(free_port())])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert result.stderr.startswith("dagl-serve: error: serving needs nvidia-pytriton")
    assert result.stderr.strip().endswith("pip install 'dagl[serve]'")


def test_a_taken_port_is_one_line_at_once():
    pytest.importorskip("pytriton")
    from dagl.runtime.serve.cli import main as serve_main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = CliRunner().invoke(serve_main, ["jpeg", "--port", str(port)])
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"dagl-serve: error: cannot listen on 127.0.0.1:{port} (Address already in use); "
                                     f"choose another --port or --host")


def test_no_server_is_one_line(tmp_path):
    pytest.importorskip("tritonclient.http")
    write_image(tmp_path / "x.png", np.zeros((16, 16), np.float32), 8)
    result = CliRunner().invoke(infer_main, ["jpeg", str(tmp_path / "x.png"), "-o", str(tmp_path / "o.png"),
                                             "--server", f"http://127.0.0.1:{free_port()}"])
    assert result.exit_code == 1 and "Traceback" not in result.stderr
    assert "dagl-infer: error: no Triton server answers at http://127.0.0.1:" in result.stderr


# --- the real server ----------------------------------------------------------------------------------

def start_server(log: Path, *extra: str) -> tuple[subprocess.Popen, str]:
    """``dagl-serve jpeg`` on a free loopback port, its output in ``log``; returns once it says it serves."""
    pytest.importorskip("pytriton")
    pytest.importorskip("tritonclient.http")
    port = free_port()
    command = [sys.executable, "-c", "from dagl.cli.console import serve; serve()", "jpeg", "--port", str(port),
               "--tile", "16", "--overlap", "4", "--threads", "1", *extra]
    with open(log, "wb") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + START_TIMEOUT_S
    while READY not in log.read_bytes():
        if process.poll() is not None or time.monotonic() > deadline:
            stop_server(process)
            pytest.fail(f"dagl-serve did not start (exit {process.poll()}):\n{log.read_text()[-3000:]}")
        time.sleep(0.5)
    return process, f"http://127.0.0.1:{port}"


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=30)


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """``dagl-serve jpeg`` on a free loopback port (batch 2, queue 2, a small pixel limit, ``--backend auto``): its
    URL and its output; stopped after."""
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    process, url = start_server(log, "--max-batch", "2", "--max-queue", "2", "--max-pixels", str(MAX_PIXELS))
    try:
        yield url, log
        assert process.poll() is None, log.read_text()[-3000:]  # no test brought it down
    finally:
        stop_server(process)


@pytest.fixture(scope="module")
def server(served):
    return served[0]


@pytest.fixture(scope="module")
def local():
    """The restorer dagl-infer opens with the server's settings (``--backend auto``'s path on this machine)."""
    restorer, _ = open_restorer("jpeg", **SETTINGS)
    with restorer:
        yield restorer


def test_the_server_says_which_path_auto_took_as_dagl_infer_does(served):
    _, log = served
    line = choose_auto("weights", "cpu", cpu_capabilities).line
    assert log.read_text().splitlines()[0] == f"dagl-serve: {line}"


def remote(url: str):
    from dagl.runtime.serve.client import RemoteRestorer

    return RemoteRestorer(url, "jpeg", timeout=REQUEST_TIMEOUT_S)


def test_served_restoration_is_the_local_array(server, local):
    image = np.random.default_rng(0).random((40, 52), dtype=np.float32)
    with remote(server) as client:
        out = client(image)
    assert out.dtype == np.float32 and out.shape == image.shape
    assert np.abs(out - local(image)).max() == 0.0
    assert np.abs(out - image).max() > 0.01  # the network changed it: not an echo


def test_dagl_infer_server_writes_the_same_file(server, tmp_path):
    source = write_image(tmp_path / "gray.png", np.random.default_rng(1).random((30, 36), dtype=np.float32), 8)
    fast = ["--tile", "16", "--overlap", "4", "--threads", "1"]
    here = CliRunner().invoke(infer_main, ["jpeg", str(source), "-o", str(tmp_path / "local.npy"), *fast])
    there = CliRunner().invoke(infer_main, ["jpeg", str(source), "-o", str(tmp_path / "remote.npy"),
                                            "--server", server])
    assert here.exit_code == 0 and there.exit_code == 0, there.stderr
    assert f"with triton ({server})" in there.stderr
    assert np.array_equal(np.load(tmp_path / "local.npy"), np.load(tmp_path / "remote.npy"))


def test_a_refused_array_is_one_line_and_the_server_stays_up(server, local):
    import tritonclient.http as http

    client = http.InferenceServerClient(server_address(server), network_timeout=REQUEST_TIMEOUT_S)
    tiny = http.InferInput("image", [1, 3, 3], "FP32")
    tiny.set_data_from_numpy(np.zeros((1, 3, 3), np.float32))  # past the client's own guard
    with pytest.raises(Exception) as refused:
        client.infer("dagl-jpeg", [tiny])
    assert refused.value.message() == f"{REFUSED}is 3x3 px; images need at least 8 px on each side"  # one line
    assert error_line(refused.value) == "is 3x3 px; images need at least 8 px on each side"
    image = np.random.default_rng(2).random((24, 24), dtype=np.float32)
    with remote(server) as again:
        assert np.array_equal(again(image), local(image))


def test_an_image_over_the_pixel_limit_is_refused_before_triton_reads_it(server):
    import tritonclient.http as http

    client = http.InferenceServerClient(server_address(server), network_timeout=REQUEST_TIMEOUT_S)
    wide = http.InferInput("image", [1, 50, 201], "FP32")  # 10,050 px, over the server's 10,000
    wide.set_data_from_numpy(np.zeros((1, 50, 201), np.float32))
    with pytest.raises(Exception) as refused:
        client.infer("dagl-jpeg", [wide])
    assert refused.value.message() == ("an input of shape [1, 50, 201] holds 10,050 values, over the 10,000 of one "
                                       "image at dagl-serve's pixel limit (see --max-pixels)")


def hostile_requests(model_path: str) -> list[tuple[str, str, bytes | None, dict[str, str]]]:
    """Requests a client of the served model never sends: each must be answered (or dropped) in one line."""
    infer = f"{model_path}/infer"
    header = json.dumps({"inputs": [{"name": "image", "shape": [1, 40, 40], "datatype": "FP32",
                                     "parameters": {"binary_data_size": 6400}}]}).encode()
    nan = np.full((40, 40), np.nan, np.float32).tobytes()
    nested = (b'{"inputs":[{"name":"image","shape":[1,8,8],"datatype":"FP32","data":' + b"[" * 100_000 +
              b"]" * 100_000 + b"}]}")
    return [
        ("POST", infer, nested, {"Content-Type": "application/json"}),  # the 100,000 levels
        ("POST", infer, b'{"a":' * 50_000 + b"1" + b"}" * 50_000, {}),
        ("POST", infer, b"[" * 1000, {}),
        ("POST", infer, b"\xff\xfe garbage", {}),
        ("POST", infer, header + nan, {"Inference-Header-Content-Length": str(len(header))}),
        ("POST", infer, header + b"\x00" * 10, {"Inference-Header-Content-Length": str(len(header))}),
        ("POST", infer, header + b"\x00" * 6400, {"Inference-Header-Content-Length": "999999"}),
        ("POST", infer, b"{}", {"Content-Length": str(1 << 40)}),
        ("POST", infer, b"{}", {"Content-Encoding": "gzip"}),
        ("POST", infer, b'{"inputs":[{"name":"image","shape":[1,100000,100000],"datatype":"FP32","data":[0]}]}', {}),
        ("POST", infer, b'{"inputs":[{"name":"image","shape":[-1,8],"datatype":"BYTES","data":["x"]}]}', {}),
        ("POST", "/v2/repository/models/dagl-jpeg/unload", b"{}", {}),
        ("POST", "/v2/systemsharedmemory/region/x/register", b'{"key":"/x","offset":0,"byte_size":64}', {}),
        ("GET", "/v2/models/stats", None, {}),
        ("GET", "/" + "a" * 60_000, None, {}),
        ("PUT", infer, b"{}", {}),
    ]


def test_a_load_of_hostile_requests_leaves_the_server_serving(server, local):
    """Every hostile request, 3 times from 4 threads at once (48 in all, bounded in time): each gets an
    answer of one line (or its connection closed), and the server still restores exactly afterwards."""
    import http.client
    from urllib.parse import urlsplit

    address = urlsplit(server)
    requests = hostile_requests("/v2/models/dagl-jpeg") * 3
    answers: list[object] = [None] * len(requests)

    def send(i: int) -> None:
        method, path, body, headers = requests[i]
        connection = http.client.HTTPConnection(address.hostname, address.port, timeout=REQUEST_TIMEOUT_S)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            answers[i] = (response.status, response.read())
        except (OSError, http.client.HTTPException) as exc:  # dropped at once: fine, if the server lives on
            answers[i] = exc
        finally:
            connection.close()

    threads = [threading.Thread(target=lambda k=k: [send(i) for i in range(k, len(requests), 4)]) for k in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    for (method, path, _, _), answer in zip(requests, answers):
        assert answer is not None
        if isinstance(answer, tuple):
            status, body = answer
            assert status >= 400, (method, path[:80], answer)
            error = json.loads(body)["error"]
            assert "\n" not in error and "Traceback" not in error, (path[:80], error)
    image = np.random.default_rng(5).random((24, 24), dtype=np.float32)
    with remote(server) as after:
        assert np.array_equal(after(image), local(image))


def test_overload_refuses_with_a_clear_error_and_loses_nothing(server, local):
    """8 clients at once, batch 2 and queue 2: each gets its exact image or "queue is full", nothing else."""
    from dagl.runtime.serve.client import ServerBusyError

    images = [np.random.default_rng(10 + i).random((96, 96), dtype=np.float32) for i in range(8)]
    results: list[object] = [None] * len(images)

    def send(i: int) -> None:
        try:
            with remote(server) as client:
                results[i] = client(images[i])
        except ServerError as exc:
            results[i] = exc

    threads = [threading.Thread(target=send, args=(i,)) for i in range(len(images))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=REQUEST_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads)
    served = [i for i, r in enumerate(results) if isinstance(r, np.ndarray)]
    busy = [r for r in results if isinstance(r, ServerBusyError)]
    assert len(served) + len(busy) == len(images), results  # no other failure, no request unanswered
    assert served and busy
    assert all("queue is full" in str(r) and "\n" not in str(r) for r in busy)
    for i in served:
        assert np.array_equal(results[i], local(images[i]))
    with remote(server) as after:
        assert np.array_equal(after(images[0]), local(images[0]))


def test_a_client_killed_mid_request_leaves_the_server_serving(server, local, tmp_path):
    script = tmp_path / "client.py"
    script.write_text(
        "import sys, numpy as np\n"
        "from dagl.runtime.serve.client import RemoteRestorer\n"
        "image = np.random.default_rng(3).random((96, 96), dtype=np.float32)\n"
        f"RemoteRestorer({server!r}, 'jpeg')(image)\n")
    client = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    time.sleep(3)  # usually mid-request; wherever it is, the server must go on serving
    client.kill()
    client.wait(timeout=30)
    image = np.random.default_rng(4).random((24, 24), dtype=np.float32)
    with remote(server) as after:
        assert np.array_equal(after(image), local(image))


def test_load_test_tool_runs_end_to_end(datasets_dir, tmp_path):
    """tools/serve_load.py on tiny crops: every answer exact, the overload answered or refused, nothing lost."""
    pytest.importorskip("pytriton")
    import json

    import serve_load  # tools/ is on pytest's pythonpath

    images = [str(datasets_dir / "classic5" / "jpeg_q10" / f"{name}.jpeg") for name in ("lena", "boats")]
    result = CliRunner().invoke(serve_load.main, [*images, "--size", "24", "--concurrency", "1", "--concurrency", "2",
                                                  "--requests", "2", "--overload-size", "24", "--overload-clients",
                                                  "4", "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    report = json.loads((tmp_path / "results.json").read_text())
    assert [level["clients"] for level in report["levels"]] == [1, 2]
    assert all(level["answered"] == level["requests"] == 2 and level["max_abs_diff"] == 0.0
               for level in report["levels"])
    overload = report["overload"]
    assert overload["answered"] + overload["busy"] == 4 and overload["other_errors"] == overload["unanswered"] == 0
    assert overload["max_abs_diff"] == 0.0 and overload["served_after"] and overload["served_after_kill"]
    assert (tmp_path / "serving.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sigterm_during_a_request_stops_the_server_in_seconds_with_one_line(tmp_path):
    """Quiet by default (one line when ready, Triton's log in a file); SIGTERM while a restoration runs
    ends it: the client gets a one-line error, the server says it stopped and exits 0."""
    log = tmp_path / "serve.log"
    triton_log = tmp_path / "triton.log"
    process, url = start_server(log, "--log-file", str(triton_log), "--backend", "torch")  # minutes, not seconds
    errors: list[str] = []

    def send() -> None:
        try:
            with remote(url) as client:
                client(np.random.default_rng(6).random((256, 256), dtype=np.float32))  # minutes at tile 16
        except ServerError as exc:
            errors.append(str(exc))

    try:
        client = threading.Thread(target=send)
        client.start()
        time.sleep(5)  # the restoration is running: about 1,000 tile passes
        os.kill(process.pid, signal.SIGTERM)
        process.wait(timeout=60)  # generous hang guard; 5-10 s measured
        client.join(timeout=60)
    finally:
        stop_server(process)
    lines = log.read_text().splitlines()
    assert process.returncode == 0 and len(lines) == 2, lines
    assert lines[0].startswith("dagl-serve: serving dagl-jpeg") and lines[0].endswith(f"Triton's log: {triton_log}")
    assert lines[1] == "dagl-serve: stopped (SIGTERM)"
    assert errors == [f"{url}: dagl-serve failed the request: StoppingError: dagl-serve is stopping"]
    assert "Started HTTPService" in triton_log.read_text()
