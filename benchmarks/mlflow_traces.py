"""How long does writing per-sample traces to a SQLite MLflow store take, one by one and in bulk?

    .venv/bin/python benchmarks/mlflow_traces.py [--samples 1000] [--scorers 2] [--rounds 2]

For each round and each path, a fresh SQLite store (``sqlite:///<temp>/mlflow.db``, the
embedded default) gets one experiment and one run, then `--samples` sample traces of one target,
each with `--scorers` Feedbacks and the reference as an Expectation, are written with
`log_sample_traces`:

- ``one-by-one``: ``bulk=False``, one ``start_trace`` call (and transaction) per trace, the path
  every trace took before the bulk write;
- ``bulk``: the default, trace infos in `TRACE_BATCH`-sized transactions (`start_traces_sql`).

Both then log the spans in batches of `SPAN_BATCH`. Also printed: opening the store the first
time (creating the tables, running the migrations) and again, each in a new process as a driver
does (after ``import mlflow``, which is not counted). Not a test: the figures depend on the
machine and its load.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from mlflow import MlflowClient
from mlflow.tracing.client import TracingClient

from evalcluster.tracking.sample_traces import build_sample_trace, log_sample_traces

OPEN_STORE = """
import sys, time
from mlflow import MlflowClient
start = time.perf_counter()
MlflowClient(sys.argv[1]).search_experiments(max_results=1)
print(time.perf_counter() - start)
"""


def make_rows(count: int, scorers: int) -> list[dict]:
    rows = []
    for i in range(count):
        failed = i % 50 == 7
        rows.append(
            {
                "target": "sim-openai",
                "sample_id": f"s{i:05d}",
                "epoch": 0,
                "prompt": f"What is {i}+25? Answer with the number only.",
                "reference": str(i + 25),
                "output": None if failed else str(i + 25 if i % 3 else 7),
                **{f"score_s{k}": None if failed else float(i % 3 > 0) for k in range(scorers)},
                "error_kind": "rate_limited" if failed else None,
                "error": "HTTP 429" if failed else None,
                "input_tokens": 20,
                "output_tokens": 2,
                "cost_usd": 0.0001,
                "latency_ms": 40.0,
                "model": "sim-1",
            }
        )
    return rows


def one_round(rows: list[dict], bulk: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="evalcluster-traces-") as tmp:
        uri = f"sqlite:///{tmp}/mlflow.db"
        # What a driver pays to open the store, in a new process: the first time (tables,
        # migrations), then again on the same database.
        setup_s, reopen_s = (_open_in_new_process(uri) for _ in range(2))
        client = MlflowClient(uri)
        experiment_id = client.create_experiment("bench", artifact_location=Path(tmp).as_uri())
        run_id = client.create_run(experiment_id).info.run_id
        traces = [
            build_sample_trace(
                row, experiment_id=experiment_id, source_run_id=run_id, eval_run_id="bench"
            )
            for row in rows
        ]
        start = time.perf_counter()
        log_sample_traces(TracingClient(uri), experiment_id, traces, bulk=bulk)
        write_s = time.perf_counter() - start
        stored = client.search_traces(locations=[experiment_id], max_results=len(rows) + 1)
        assert len(stored) == len(rows), (len(stored), len(rows))
        return {"setup": setup_s, "reopen": reopen_s, "write": write_s}


def _open_in_new_process(uri: str) -> float:
    done = subprocess.run(
        [sys.executable, "-c", OPEN_STORE, uri], capture_output=True, text=True, check=True
    )
    return float(done.stdout.split()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--samples", type=int, default=1000)
    parser.add_argument("--scorers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    rows = make_rows(args.samples, args.scorers)
    results: dict[str, list[dict[str, float]]] = {"one-by-one": [], "bulk": []}
    for _ in range(args.rounds):
        for name in results:  # alternate, so that load changes hit both alike
            results[name].append(one_round(rows, bulk=name == "bulk"))
    print(f"{args.samples} samples x 1 target x {args.scorers} scorers, {args.rounds} rounds")
    for name, rounds in results.items():
        writes = ", ".join(f"{r['write']:.2f}" for r in rounds)
        median = statistics.median(r["write"] for r in rounds)
        print(f"  {name:>10}: write {writes} s (median {median:.2f})")
    before = statistics.median(r["write"] for r in results["one-by-one"])
    after = statistics.median(r["write"] for r in results["bulk"])
    print(f"  speed-up (medians): {before / after:.1f}x")
    every = [r for rounds in results.values() for r in rounds]
    fresh = statistics.median(r["setup"] for r in every)
    again = statistics.median(r["reopen"] for r in every)
    print(f"  opening the store in a new process: new database {fresh:.2f} s, again {again:.2f} s")


if __name__ == "__main__":
    main()
