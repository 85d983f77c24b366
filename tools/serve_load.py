"""Load-test a dagl-serve Triton server on loopback: throughput, latency, peak memory, exactness, overload.

    python tools/serve_load.py IMAGES... --out runs/serve-load     # what docs/serving.md records

Bounded in requests and time: each concurrency level sends ``--requests`` images (at least one per
client) and gives up after ``--deadline`` seconds. The tool starts ``dagl-serve jpeg`` itself on a
free loopback port (nothing else is ever addressed), then:

1. the baseline: each centre crop restored by ``dagl-infer jpeg CROP.npy -o REF.npy`` (exact float32);
2. per concurrency level: clients send crops at once, each request timed from send to answer;
   throughput = answered requests / the level's wall time; the server's peak memory is the summed
   peak RSS (VmHWM) of its process tree (Python process, tritonserver, backend stub);
   every answer is compared with the baseline (max |diff| must be 0);
3. overload: a second server with a queue of 2 and batch 1 gets ``--overload-clients`` small crops at
   once: each is answered exactly or refused as busy, and the server answers afterwards;
4. a client killed mid-request, then one more request, which must be answered exactly.

Writes ``results.json``, ``serving.md`` (the tables) and ``serving.png`` into ``--out``.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import click
import numpy as np

START_TIMEOUT_S = 240
#: The commands of the environment running this script (on PATH or not).
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def centre_crop(path: Path, size: int) -> np.ndarray:
    """The network's view (luma for jpeg) of ``path``, cropped to ``size`` x ``size`` at the centre."""
    from dagl.images.io import read_image
    from dagl.runtime.channels import to_network

    array = to_network(read_image(path), "jpeg").array
    top, left = (array.shape[0] - size) // 2, (array.shape[1] - size) // 2
    if min(top, left) < 0:
        raise click.UsageError(f"{path} is smaller than {size}x{size}")
    return np.ascontiguousarray(array[top:top + size, left:left + size])


def local_baselines(crops: dict[str, np.ndarray], folder: Path,
                    server_args: list[str]) -> tuple[dict[str, np.ndarray], float]:
    """dagl-infer's output for each crop, with the server's options (so the same path as ``--backend auto`` takes
    for both) (``.npy``: exact float32), and its restoration seconds per image as it reports them (model loading
    excluded): the local baseline."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, crop in crops.items():
        np.save(folder / f"{name}.npy", crop)
    out = folder / "ref"
    done = subprocess.run([str(BIN / "dagl-infer"), "jpeg", *(str(folder / f"{n}.npy") for n in crops), "-o", f"{out}/",
                           "--overwrite", *server_args],
                          check=True, capture_output=True, text=True)
    seconds = float(re.search(r"MP in ([0-9.]+) s with", done.stderr).group(1)) / len(crops)
    return {name: np.load(out / f"{name}.npy") for name in crops}, seconds


class Server:
    """``dagl-serve jpeg`` in its own process group on a free loopback port."""

    def __init__(self, log: Path, extra: list[str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log
        with open(log, "wb") as out:
            self.process = subprocess.Popen([str(BIN / "dagl-serve"), "jpeg", "--port", str(self.port), *extra], stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + START_TIMEOUT_S
        while b"dagl-serve: serving" not in log.read_bytes():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise click.ClickException(f"dagl-serve did not start; see {log}")
            time.sleep(0.5)

    def backend(self) -> str:
        """The backend and device the server said it serves on (``openvino, cpu``), from its ready line."""
        found = re.search(rb"dagl-serve: serving \S+ \(([^,]+, [^,]+),", self.log.read_bytes())
        return found.group(1).decode() if found else "backend not said"

    def peak_memory(self) -> int:
        """Summed VmHWM (bytes) of the server's process tree: each process's own peak resident set."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
                children.setdefault(ppid, []).append(int(entry.name))
        total, todo = 0, [self.process.pid]
        while todo:
            pid = todo.pop()
            todo += children.get(pid, [])
            try:
                for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                    if line.startswith("VmHWM:"):
                        total += int(line.split()[1]) * 1024
            except OSError:
                pass
        return total

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def blast(url: str, images: list[tuple[str, np.ndarray]], clients: int, deadline: float) -> list[dict]:
    """``clients`` threads share ``images`` (sent in order); one record per request."""
    from dagl.runtime.serve.client import RemoteRestorer, ServerBusyError, ServerError

    records: list[dict] = []
    lock = threading.Lock()
    queue = list(enumerate(images))

    def client() -> None:
        with RemoteRestorer(url, "jpeg", timeout=deadline) as remote:
            while True:
                with lock:
                    if not queue:
                        return
                    index, (name, image) = queue.pop(0)
                start = time.perf_counter()
                try:
                    out, error = remote(image), None
                except ServerBusyError as exc:
                    out, error = None, ("busy", str(exc))
                except ServerError as exc:
                    out, error = None, ("error", str(exc))
                with lock:
                    records.append({"index": index, "name": name, "seconds": time.perf_counter() - start,
                                    "out": out, "error": error})

    threads = [threading.Thread(target=client, daemon=True) for _ in range(clients)]
    for thread in threads:
        thread.start()
    end = time.monotonic() + deadline
    for thread in threads:
        thread.join(timeout=max(0.0, end - time.monotonic()))
    return records


def level(server: Server, crops: dict[str, np.ndarray], baselines: dict[str, np.ndarray], clients: int,
          requests: int, deadline: float) -> dict:
    names = list(crops)
    images = [(names[i % len(names)], crops[names[i % len(names)]]) for i in range(max(requests, clients))]
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    records = blast(server.url, images, clients, deadline)
    wall = time.perf_counter() - start
    answered = [r for r in records if r["out"] is not None]
    latencies = np.array([r["seconds"] for r in answered])
    diffs = [float(np.abs(r["out"] - baselines[r["name"]]).max()) for r in answered]
    return {"clients": clients, "requests": len(images), "answered": len(answered),
            "failed": [r["error"] for r in records if r["error"]], "unanswered": len(images) - len(records),
            "wall_s": wall, "throughput_per_s": len(answered) / wall,
            "p50_s": float(np.percentile(latencies, 50)) if len(answered) else None,
            "p99_s": float(np.percentile(latencies, 99)) if len(answered) else None,
            "max_abs_diff": max(diffs) if diffs else None, "server_peak_bytes": server.peak_memory(),
            "server_alive": server.alive(), "load_average": [load_before, os.getloadavg()[0]]}


def killed_client(url: str, crop: np.ndarray, folder: Path) -> None:
    """A client process killed 2 s into its request (it is usually still waiting for the answer)."""
    np.save(folder / "killed.npy", crop)
    code = ("import sys, numpy as np\nfrom dagl.runtime.serve.client import RemoteRestorer\n"
            f"RemoteRestorer({url!r}, 'jpeg')(np.load({str(folder / 'killed.npy')!r}))\n")
    process = subprocess.Popen([sys.executable, "-c", code])
    time.sleep(2)
    process.kill()
    process.wait(timeout=30)


def plot(levels: list[dict], path: Path, title: str, local_s: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clients = [r["clients"] for r in levels]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(clients, [r["throughput_per_s"] * 60 for r in levels], "o-", label="dagl-serve")
    left.axhline(60 / local_s, color="grey", linestyle=":", label="dagl-infer, one process")
    left.set(xscale="log", xticks=clients, xticklabels=clients, xlabel="concurrent clients",
             ylabel="images / minute", title="throughput")
    left.set_ylim(bottom=0)
    left.legend()
    right.plot(clients, [r["p50_s"] for r in levels], "o-", label="p50")
    right.plot(clients, [r["p99_s"] for r in levels], "s--", label="p99")
    right.set(xscale="log", xticks=clients, xticklabels=clients, xlabel="concurrent clients", ylabel="seconds",
              title="latency per request (queueing included)")
    right.legend()
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def markdown(levels: list[dict], overload: dict, local_s: float) -> str:
    rows = [f"dagl-infer, same crops, one process: {local_s:.1f} s per image ({60 / local_s:.2f} images/min; "
            f"its own restoration time, model loading excluded).", "","| clients | requests | answered | throughput (images/min) | p50 (s) | p99 (s) | server peak RSS (MiB) "
            "| max \\|diff\\| vs dagl-infer | throughput / dagl-infer's | load average (1 min) |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in levels:
        rows.append(f"| {r['clients']} | {r['requests']} | {r['answered']} | {r['throughput_per_s'] * 60:.2f} | "
                    f"{r['p50_s']:.1f} | {r['p99_s']:.1f} | {r['server_peak_bytes'] / 2**20:.0f} | "
                    f"{r['max_abs_diff']:g} | {r['throughput_per_s'] * local_s:.2f} | "
                    f"{r['load_average'][0]:.1f} -> {r['load_average'][1]:.1f} |")
    rows += ["", f"Overload ({overload['clients']} clients, queue {overload['max_queue']}, batch 1): "
             f"{overload['answered']} answered exactly (max |diff| {overload['max_abs_diff']:g}), "
             f"{overload['busy']} refused as busy, {overload['other_errors']} other errors, "
             f"{overload['unanswered']} unanswered; refusal: `{overload['busy_message']}`; "
             f"server answering afterwards: {overload['served_after']}; after a client killed mid-request: "
             f"{overload['served_after_kill']}."]
    return "\n".join(rows) + "\n"


@click.command(context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--size", type=click.IntRange(min=16), default=256, show_default=True, help="Crop side (pixels).")
@click.option("--concurrency", type=click.IntRange(min=1), multiple=True, default=(1, 4, 16), show_default=True)
@click.option("--requests", type=click.IntRange(min=1), default=4, show_default=True,
              help="Requests per level (at least one per client).")
@click.option("--deadline", type=click.FloatRange(min=1), default=1800, show_default=True,
              help="Seconds a level may take before its unanswered requests are counted as such.")
@click.option("--overload-clients", type=click.IntRange(min=2), default=8, show_default=True)
@click.option("--overload-size", type=click.IntRange(min=16), default=64, show_default=True)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path), default=Path("runs/serve-load"),
              show_default=True)
def main(images: tuple[Path, ...], size: int, concurrency: tuple[int, ...], requests: int, deadline: float,
         overload_clients: int, overload_size: int, out: Path) -> None:
    """Load-test dagl-serve (shipped jpeg weights) on loopback with crops of IMAGES."""
    from dagl.runtime.serve.client import RemoteRestorer

    out.mkdir(parents=True, exist_ok=True)
    crops = {path.stem: centre_crop(path, size) for path in images}
    baselines, local_s = local_baselines(crops, out / "crops", [])
    server = Server(out / "serve.log", [])
    served_on = server.backend()
    try:
        levels = []
        for clients in concurrency:
            levels.append(level(server, crops, baselines, clients, requests, deadline))
            click.echo(json.dumps(levels[-1]), err=True)
    finally:
        server.stop()

    small = {f"{name}-small": centre_crop(path, overload_size) for name, path in zip(crops, images)}
    small_baselines, _ = local_baselines(small, out / "small", [])
    busy_server = Server(out / "serve-overload.log", ["--max-queue", "2", "--max-batch", "1"])
    try:
        names = list(small)
        sent = [(names[i % len(names)], small[names[i % len(names)]]) for i in range(overload_clients)]
        records = blast(busy_server.url, sent, overload_clients, deadline)
        answered = [r for r in records if r["out"] is not None]
        busy = [r["error"][1] for r in records if r["error"] and r["error"][0] == "busy"]
        first = names[0]
        with RemoteRestorer(busy_server.url, "jpeg") as after:
            served_after = bool(np.array_equal(after(small[first]), small_baselines[first]))
        killed_client(busy_server.url, next(iter(crops.values())), out)
        with RemoteRestorer(busy_server.url, "jpeg") as after:
            served_after_kill = bool(np.array_equal(after(small[first]), small_baselines[first]))
        overload = {"clients": overload_clients, "max_queue": 2, "size": overload_size, "answered": len(answered),
                    "busy": len(busy), "other_errors": sum(1 for r in records if r["error"] and r["error"][0] != "busy"),
                    "unanswered": overload_clients - len(records),
                    "max_abs_diff": max((float(np.abs(r["out"] - small_baselines[r["name"]]).max()) for r in answered),
                                        default=0.0),
                    "busy_message": busy[0] if busy else "", "served_after": served_after,
                    "served_after_kill": served_after_kill, "alive": busy_server.alive()}
    finally:
        busy_server.stop()

    import platform

    title = (f"dagl-serve jpeg (shipped weights, {served_on}, {len(os.sched_getaffinity(0))} core(s)), {size}x{size} "
             f"crops, {platform.machine()}")
    results = {"title": title, "size": size, "dagl_infer_s_per_image": local_s, "images": [p.name for p in images], "levels": levels,
               "overload": overload}
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "serving.md").write_text(markdown(levels, overload, local_s))
    plot(levels, out / "serving.png", title, local_s)
    click.echo(markdown(levels, overload, local_s))


if __name__ == "__main__":
    main()
