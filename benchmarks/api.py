"""Benchmark the lookup service through HTTP on loopback.

Starts its own `nhs-lookup serve` on a free 127.0.0.1 port with a throw-away database, then prints
single-lookup latency (median, p95 over a bounded number of requests), throughput under load
(``--clients`` concurrent keep-alive clients on ``/lookup``: lookups/s, median, p95, errors) and batch
throughput (items/s from submission until the job is done, including persistence of results and mappings).

    .venv/bin/python benchmarks/api.py [--requests 300] [--clients 20] [--load-requests 2000]
                                       [--batch-size 2000] [--catalogue PATH]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
SAMPLE_CASES = REPO / "src" / "nhs_lookup" / "data" / "sample_cases.json"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def exams(copies: int) -> list[dict]:
    cases = json.loads(SAMPLE_CASES.read_text())
    return [
        {
            "exam_name": c["EXAM_NAME"],
            "modality_code": c.get("MODALITY_CODE"),
            "exam_code": f"{c.get('EXAM_CODE')}-{k}",
            "data_source": c.get("DATA_SOURCE"),
        }
        for k in range(copies)
        for c in cases
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float | None:
    """CPU time (user + system) of process *pid* and its live children, from /proc (Linux); None elsewhere.
    Unlike wall-clock figures it barely depends on what else the machine is running."""
    proc = Path("/proc")
    if not (proc / str(pid)).is_dir():
        return None
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(entry.name) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tick
    return total


def load_test(base: str, bodies: list[dict], clients: int, total: int) -> dict[str, float]:
    """*clients* threads, each with its own keep-alive connection, share *total* /lookup requests."""
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    counter = iter(range(total))

    def worker() -> None:
        nonlocal errors
        with httpx.Client(base_url=base, timeout=60) as http:
            while True:
                with lock:
                    i = next(counter, None)
                if i is None:
                    return
                t = time.perf_counter()
                try:
                    ok = http.post("/lookup", json=bodies[i % len(bodies)]).status_code == 200
                except httpx.HTTPError:
                    ok = False
                ms = (time.perf_counter() - t) * 1000
                with lock:
                    latencies.append(ms)
                    errors += not ok

    threads = [threading.Thread(target=worker) for _ in range(clients)]
    t0 = time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    wall = time.perf_counter() - t0
    return {
        "rate": len(latencies) / wall,
        "median": statistics.median(latencies),
        "p95": percentile(latencies, 0.95),
        "errors": errors,
        "n": len(latencies),
        "wall": wall,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=300, help="single /lookup requests to time (bounded)")
    ap.add_argument("--batch-size", type=int, default=2000, help="exams in the batch job")
    ap.add_argument("--clients", type=int, default=20, help="concurrent clients in the load test (0: skip)")
    ap.add_argument("--load-requests", type=int, default=2000, help="/lookup requests in the load test")
    ap.add_argument("--catalogue", type=Path, default=None, help="catalogue file (default: bundled sample)")
    ap.add_argument("--chunk-size", type=int, default=50, help="job chunk size passed to the server")
    ap.add_argument("--lookup-workers", type=int, default=0, help="server lookup worker processes")
    args = ap.parse_args()
    if args.requests < 1 or args.batch_size < 1:
        ap.error("--requests and --batch-size must be positive")

    tmp = Path(tempfile.mkdtemp(prefix="nhs_lookup_bench_"))
    port = free_port()
    env = {**os.environ, "NHS_LOOKUP_CACHE": str(tmp / "cache")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH")) if p)
    env.pop("NHS_LOOKUP_API_KEY", None)
    cmd = [
        sys.executable,
        "-m",
        "nhs_lookup.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        f"sqlite:///{tmp / 'bench.db'}",
        "--log-level",
        "warning",
        "--job-chunk-size",
        str(args.chunk_size),
        "--lookup-workers",
        str(args.lookup_workers),
    ]
    if args.catalogue:
        cmd += ["--catalogue", str(args.catalogue)]
    log = (tmp / "server.log").open("w")
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60)
    try:
        while True:
            if proc.poll() is not None:
                print((tmp / "server.log").read_text(), file=sys.stderr)
                return 1
            try:
                health = client.get("/health").json()
                break
            except httpx.TransportError:
                time.sleep(0.05)
        startup = time.perf_counter() - t0

        singles = exams(1)
        for e in singles[:10]:  # warm-up
            client.post("/lookup", json=e).raise_for_status()
        latencies = []
        for i in range(args.requests):
            body = singles[i % len(singles)]
            t = time.perf_counter()
            client.post("/lookup", json=body).raise_for_status()
            latencies.append((time.perf_counter() - t) * 1000)

        load = None
        if args.clients > 0:
            cpu0 = cpu_seconds(proc.pid)
            load = load_test(f"http://127.0.0.1:{port}", singles, args.clients, args.load_requests)
            cpu1 = cpu_seconds(proc.pid)
            load["cpu_ms"] = (
                (cpu1 - cpu0) * 1000 / load["n"] if cpu0 is not None and cpu1 is not None else None
            )

        batch = exams(-(-args.batch_size // len(singles)))[: args.batch_size]
        t = time.perf_counter()
        job = client.post("/batch", json={"exams": batch, "name": "benchmark"}).json()
        submit_ms = (time.perf_counter() - t) * 1000
        while job["status"] in ("queued", "running"):
            time.sleep(0.05)
            job = client.get(f"/jobs/{job['id']}").json()
        batch_s = time.perf_counter() - t
        if job["status"] != "done":
            print(f"batch job ended as {job['status']}: {job['message']}", file=sys.stderr)
            return 1
        t = time.perf_counter()
        csv_bytes = len(client.get(f"/jobs/{job['id']}/results", params={"format": "csv"}).content)
        csv_s = time.perf_counter() - t
    finally:
        client.close()
        proc.terminate()
        proc.wait(timeout=30)
        log.close()

    print(
        f"nhs-lookup service benchmark (HTTP on 127.0.0.1, {os.cpu_count()} CPU, Python {platform.python_version()})"
    )
    print(
        f"catalogue: {health['catalogue']} ({health['catalogue_rows']} rows); server start-up {startup:.1f} s"
    )
    print(
        f"single /lookup, {args.requests} requests: median {statistics.median(latencies):.2f} ms, "
        f"p95 {percentile(latencies, 0.95):.2f} ms, max {max(latencies):.2f} ms"
    )
    if load is not None:
        print(
            f"load: {args.clients} concurrent clients, {load['n']} /lookup requests in {load['wall']:.1f} s = "
            f"{load['rate']:.0f} lookups/s, median {load['median']:.1f} ms, p95 {load['p95']:.1f} ms, "
            f"errors {load['errors']}"
        )
        if load["cpu_ms"]:
            print(
                f"server CPU per /lookup under load: {load['cpu_ms']:.2f} ms (server + lookup workers) -> at most "
                f"{1000 / load['cpu_ms']:.0f} lookups/s per free core"
            )
    print(
        f"batch of {len(batch)} exams: submitted in {submit_ms:.0f} ms, done in {batch_s:.2f} s "
        f"= {len(batch) / batch_s:.0f} exams/s (chunk size {args.chunk_size}, results and mappings persisted)"
    )
    print(f"server lookup worker processes: {args.lookup_workers}")
    print(f"results CSV download: {csv_bytes / 1024:.0f} KiB in {csv_s * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
