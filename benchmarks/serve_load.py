"""Load on ``skmnist serve``: throughput, latency and failed requests.

Run: ``python benchmarks/serve_load.py [--model FILE] [--requests 2000]
[--concurrency 16]``. Starts ``skmnist serve`` on a free port of 127.0.0.1 (it
never listens elsewhere), posts canvas-sized PNGs of MNIST test digits from
``--concurrency`` client threads until ``--requests`` requests are answered, stops
the server and prints one JSON object: throughput, p50/p99 latency, failed
requests, and as a baseline measured in the same run the rate of the same
predictions made in this process one at a time (read PNG, preprocess, predict),
without HTTP. Without ``--model`` it first trains a small model on
``$SKMNIST_DATA`` (one epoch on 10,000 digits).

``--worst-case N`` measures instead what the largest upload the server accepts
costs it: a 4096x4096 RGBA PNG of a digit (a few dozen KB, 64 MB decoded),
once alone and then from N clients at once (default 40), while another client
asks ``/health`` every 0.1 s. It prints the server's idle RSS, its peak RSS
over idle for one upload and for the N (Linux's VmHWM, reset before each), and
the slowest ``/health`` answer meanwhile.
"""

import argparse
import io
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from skmnist._serve import _ServerProcess, worst_case_upload

STARTUP_TIMEOUT = 300
REQUEST_TIMEOUT = 60


def digit_pngs(count: int) -> list[bytes]:
    """MNIST test digits drawn as the page sends them: black on a white 280x280
    canvas."""
    from PIL import Image

    from skmnist.datasets import load_mnist

    _, (x_test, _) = load_mnist()
    pngs = []
    for digit in x_test[:count]:
        image = Image.fromarray(255 - digit).resize((280, 280))
        buffer = io.BytesIO()
        image.save(buffer, format="PNG")
        pngs.append(buffer.getvalue())
    return pngs


def train_model(path: Path) -> None:
    from skmnist import make_mnist_pipeline, save
    from skmnist.datasets import load_mnist

    (x_train, y_train), _ = load_mnist()
    pipeline = make_mnist_pipeline(epochs=1, random_state=0)
    save(pipeline.fit(x_train[:10_000], y_train[:10_000]), path)


def in_process_rate(model_path: Path, pngs: list[bytes], seconds: float = 5) -> float:
    """Predictions per second without HTTP: the baseline. Each image goes
    through the server's own decoding and prediction."""
    from skmnist import load
    from skmnist._serve import DEFAULT_MAX_IMAGE_PIXELS, _predict_proba

    model = load(model_path)
    _predict_proba(model, pngs[0], DEFAULT_MAX_IMAGE_PIXELS)
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        _predict_proba(model, pngs[done % len(pngs)], DEFAULT_MAX_IMAGE_PIXELS)
        done += 1
    return done / (time.perf_counter() - start)


def load(
    url: str, pngs: list[bytes], requests: int, concurrency: int, expect: int = 200
) -> dict:
    """Post ``requests`` of ``pngs`` from ``concurrency`` clients; a request
    fails unless answered with status ``expect``."""
    import httpx

    latencies, failures = [], []
    lock = threading.Lock()
    issued = 0

    def client():
        nonlocal issued
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http:
            while True:
                with lock:
                    if issued >= requests:
                        return
                    index = issued
                    issued += 1
                start = time.perf_counter()
                try:
                    response = http.post(
                        "predict",
                        content=pngs[index % len(pngs)],
                        headers={"content-type": "image/png"},
                    )
                    ok = response.status_code == expect and (
                        expect != 200 or "label" in response.json()
                    )
                    problem = None if ok else f"status {response.status_code}"
                except httpx.HTTPError as error:
                    problem = f"{type(error).__name__}: {error}"
                elapsed = time.perf_counter() - start
                with lock:
                    latencies.append(elapsed)
                    if problem:
                        failures.append(problem)

    threads = [threading.Thread(target=client) for _ in range(concurrency)]
    start = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        # Bounded: every request has a timeout, so this only guards a hang.
        thread.join(timeout=REQUEST_TIMEOUT * requests)
    seconds = time.perf_counter() - start
    milliseconds = np.array(latencies) * 1000
    return {
        "requests": len(latencies),
        "concurrency": concurrency,
        "failed": len(failures),
        "first_failures": failures[:5],
        "seconds": round(seconds, 2),
        "throughput_rps": round(len(latencies) / seconds, 1),
        "p50_ms": round(float(np.percentile(milliseconds, 50)), 1),
        "p99_ms": round(float(np.percentile(milliseconds, 99)), 1),
        "max_ms": round(float(milliseconds.max()), 1),
    }


def long_strip_upload() -> bytes:
    """As many pixels as :func:`worst_case_upload`, in a strip of the longest
    side the server reads (32768 x 512, grey, blank)."""
    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (32768, 512), 255).save(buffer, format="PNG")
    return buffer.getvalue()


def worst_case(
    server: _ServerProcess, clients: int, png: bytes, expect: int = 200
) -> dict:
    """Peak memory of the server over its idle RSS for one upload of ``png``
    and for ``clients`` at once (each answered with ``expect``), and
    ``/health``'s slowest answer meanwhile."""
    import httpx

    url = server.url
    idle = server.memory("VmRSS")
    health_seconds = []
    done = threading.Event()

    def ask_health():
        with httpx.Client(base_url=url, timeout=REQUEST_TIMEOUT) as http:
            while not done.is_set():
                start = time.perf_counter()
                http.get("health").raise_for_status()
                health_seconds.append(time.perf_counter() - start)
                done.wait(0.1)

    server.reset_peak()
    alone = load(url, [png], 1, 1, expect)
    peak_alone = server.memory("VmHWM") - idle
    server.reset_peak()
    poller = threading.Thread(target=ask_health)
    poller.start()
    try:
        together = load(url, [png], clients, clients, expect)
    finally:
        done.set()
        poller.join(timeout=REQUEST_TIMEOUT)
    return {
        "upload_bytes": len(png),
        "idle_rss_mb": round(idle / 2**20),
        "one_upload_peak_over_idle_mb": round(peak_alone / 2**20),
        "one_upload_failed": alone["failed"],
        "clients": clients,
        "clients_peak_over_idle_mb": round((server.memory("VmHWM") - idle) / 2**20),
        "clients_failed": together["failed"],
        "clients_seconds": together["seconds"],
        "health_requests": len(health_seconds),
        "health_max_ms": round(1000 * max(health_seconds), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="a saved model (default: train a small one)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument(
        "--worst-case",
        type=int,
        nargs="?",
        const=40,
        default=None,
        metavar="N",
        help="measure worst-case uploads' memory from N clients (default 40)",
    )
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        model_path = Path(args.model) if args.model else folder / "model.skmnist"
        if not args.model:
            train_model(model_path)
        pngs = digit_pngs(200)
        baseline = None if args.worst_case else in_process_rate(model_path, pngs)

        def started():
            server = _ServerProcess(
                model_path, folder / "server.log", startup_timeout=STARTUP_TIMEOUT
            )
            load(server.url, pngs, args.concurrency, args.concurrency)  # warm-up
            return server

        if args.worst_case:
            # Each on a server of its own, whose idle RSS no earlier upload
            # raised. (The strip shows no digit: 422 is its answer.)
            results = {}
            for name, png, expect in [
                ("square_rgba", worst_case_upload(), 200),
                ("long_strip_grey", long_strip_upload(), 422),
            ]:
                with started() as server:
                    results[name] = worst_case(server, args.worst_case, png, expect)
            failed = sum(
                result["one_upload_failed"] + result["clients_failed"]
                for result in results.values()
            )
        else:
            with started() as server:
                results = load(server.url, pngs, args.requests, args.concurrency)
            failed = results["failed"]
    if baseline is not None:
        results["in_process_rps"] = round(baseline, 1)
        results["throughput_vs_in_process"] = round(
            results["throughput_rps"] / baseline, 2
        )
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
