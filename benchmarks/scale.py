"""Scale: a large suite against a zero-latency simulator, twice, at two sizes.

Prints samples per second and the peak memory (RSS) of the driver and of Ray's worker processes
for each size, and the ratio of the larger run's peaks to the smaller one's. The floor (issue
"Sharded, resumable, exactly-once suite execution"): a 1,000,000-sample suite must not need more
than 20% more memory than a 200,000-sample one.

    python benchmarks/scale.py                       # 200,000 then 1,000,000 samples
    python benchmarks/scale.py --sizes 20000 100000  # a quicker check of the same property

Each size runs in a fresh subprocess (its own embedded Ray; `--executor local`: none, the run in
the subprocess itself), so peaks do not carry over.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import psutil
import yaml

SHARD_SIZE = 1000


def write_suite(work: Path, samples: int, base_url: str) -> Path:
    data = work / "data.jsonl"
    with data.open("w") as f:
        for i in range(samples):
            a, b = i % 997, (i * 7) % 991
            f.write(json.dumps({"id": f"s{i}", "question": f"{a} + {b}", "answer": str(a + b)}))
            f.write("\n")
    suite = {
        "name": "scale",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "numeric"}],
        "shard_size": SHARD_SIZE,
        "targets": [
            {
                "name": "t",
                "provider": "sim",
                "model": "m",
                "params": {"temperature": 0, "max_tokens": 8},
            }
        ],
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": base_url + "/v1",
                "api_key_env": "SCALE_KEY",
                "max_concurrency": 256,
                "pricing": {"input_per_mtok": 0.1, "output_per_mtok": 0.2},
            }
        },
    }
    path = work / "suite.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def one_size(samples: int, executor: str = "ray") -> dict:
    """Run in this process: the suite of `samples` samples; report speed and peaks. With
    `executor` "local" no Ray starts: the driver's peak then holds the shards and endpoints."""
    import ray

    from evalcluster.jobs.driver import run_suite
    from evalcluster.jobs.options import RunOptions
    from evalcluster.jobs.prepare import prepare_suite
    from evalcluster.simulator import SimulatorConfig, SimulatorProcess

    peaks = {"workers_max_rss": 0, "workers_sum_rss": 0}
    stop = threading.Event()

    def watch() -> None:
        me = psutil.Process()
        while not stop.wait(0.5):
            rss = []
            for proc in psutil.process_iter(["cmdline", "memory_info"]):
                cmd = " ".join(proc.info["cmdline"] or ())
                if proc.pid != me.pid and "default_worker.py" in cmd and proc.info["memory_info"]:
                    rss.append(proc.info["memory_info"].rss)
            if rss:
                peaks["workers_max_rss"] = max(peaks["workers_max_rss"], max(rss))
                peaks["workers_sum_rss"] = max(peaks["workers_sum_rss"], sum(rss))

    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(SimulatorConfig()) as sim:
        work = Path(tmp)
        suite = prepare_suite(write_suite(work, samples, sim.url))
        if executor == "ray":
            ray.init(include_dashboard=False, log_to_driver=False, namespace="evalcluster")
        watcher = threading.Thread(target=watch, daemon=True)
        if executor == "ray":  # in-process there are no workers (others' would be counted)
            watcher.start()
        started = time.perf_counter()
        result = run_suite(
            suite,
            RunOptions(
                store=str(work / "store"),
                tracking_uri=None,
                max_traced_samples=0,
                executor=executor,
            ),
        )
        elapsed = time.perf_counter() - started
        stop.set()
        if executor == "ray":
            ray.shutdown()
    return {
        "samples": samples,
        "status": result.status,
        "seconds": elapsed,
        "samples_per_s": samples / elapsed,
        "driver_peak_rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        **peaks,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs=2, default=[200_000, 1_000_000])
    parser.add_argument(
        "--executor",
        choices=("ray", "local"),
        default="ray",
        help="ray (an embedded Ray per size, as recorded) or local (in-process, no Ray)",
    )
    parser.add_argument("--one", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one_size(args.one, args.executor)))
        return 0
    env = {**__import__("os").environ, "SCALE_KEY": "sk-scale-benchmark"}
    rows = []
    for size in args.sizes:
        done = subprocess.run(
            [sys.executable, __file__, "--one", str(size), "--executor", args.executor],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
    mib = 1024 * 1024
    print(
        f"{'samples':>10} {'status':>9} {'s':>8} {'samples/s':>10} {'driver MiB':>11} "
        f"{'worker max MiB':>15} {'workers sum MiB':>16}"
    )
    for r in rows:
        print(
            f"{r['samples']:>10,} {r['status']:>9} {r['seconds']:>8.1f} "
            f"{r['samples_per_s']:>10,.0f} {r['driver_peak_rss'] / mib:>11.0f} "
            f"{r['workers_max_rss'] / mib:>15.0f} {r['workers_sum_rss'] / mib:>16.0f}"
        )
    small, large = rows
    for key in ("driver_peak_rss", "workers_max_rss", "workers_sum_rss"):
        ratio = large[key] / small[key] if small[key] else float("nan")
        print(
            f"{key}: x{ratio:.2f} for x{large['samples'] / small['samples']:.0f} the samples "
            f"(floor: < x1.20)"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
