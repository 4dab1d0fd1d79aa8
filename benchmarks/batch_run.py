"""Whole runs in batch mode against sync: cost per sample and provider calls, through the driver.

One suite of N samples (default 5,000) run twice by the in-process executor (what
`evalcluster run` does without --address) against one simulator over HTTP (OpenAI format):
once with the provider's `mode: sync`, once with `mode: batch` (batches of up to 1,000, the
simulator finishing a batch in `--turnaround` seconds). Each run has its own store, so neither
is served from the other's cache. Cost is the sum of the rows' `cost_usd` (priced from the
usage the simulator reported at input 0.40 / output 1.60 / cached input 0.10 USD per Mtok, as
gpt-4.1-mini; batch x0.5).

The prompt-caching case runs the same suite with a shared system prompt of about 2,000 tokens
(`--prefix-tokens`), sync and then batch: the simulator, as OpenAI does, reads a prefix of 1,024
tokens or more from its cache after the first request. The uncached sync price of those rows is
what they paid plus what batching and caching saved (`usd_saved_batch`, `usd_saved_cache`).

    python benchmarks/batch_run.py [--samples 5000] [--turnaround 2] [--prefix-tokens 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import yaml

KEY_ENV = "BATCH_RUN_KEY"


PRICE = {"input_per_mtok": 0.40, "output_per_mtok": 1.60, "cache_read_per_mtok": 0.10}


def shared_prefix(tokens: int) -> str:
    """A system prompt of about `tokens` tokens by the simulator's count (3 per rule)."""
    return "Follow these rules. " + " ".join(f"rule{i} applies." for i in range(tokens // 3))


def write_suite(
    work: Path, samples: int, base_url: str, mode: str, *, system: str | None = None
) -> Path:
    data = work / "data.jsonl"
    if not data.exists():
        with data.open("w") as f:
            for i in range(samples):
                a, b = i % 997, (i * 7) % 991
                row = {"id": f"s{i}", "question": f"{a} + {b}", "answer": str(a + b)}
                f.write(json.dumps(row) + "\n")
    suite = {
        "name": "batch-run",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": "What is {question}? Answer with the number only.",
        "scorers": [{"type": "numeric"}],
        **({"system": system} if system else {}),
        "shard_size": 500,
        "targets": [{"name": "t", "provider": "sim", "model": "m", "params": {"temperature": 0}}],
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": base_url + "/v1",
                "api_key_env": KEY_ENV,
                "max_concurrency": 256,
                "pricing": PRICE,
                "mode": mode,
                "batch": {"max_batch_requests": 1000, "max_wait_s": 0.5, "poll_initial_s": 0.5},
            }
        },
    }
    path = work / f"suite-{mode}{'-prefix' if system else ''}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def one_run(work: Path, sim, samples: int, mode: str, *, system: str | None = None) -> dict:
    from evalcluster.jobs.driver import run_suite
    from evalcluster.jobs.options import RunOptions
    from evalcluster.jobs.prepare import prepare_suite
    from evalcluster.store.fs import open_store
    from evalcluster.store.lake import read_results

    before = sim.stats()
    suite = prepare_suite(write_suite(work, samples, sim.url, mode, system=system))
    name = f"{mode}-prefix" if system else mode
    store = str(work / f"store-{name}")
    started = time.perf_counter()
    result = run_suite(
        suite,
        RunOptions(
            store=store, tracking_uri=None, max_traced_samples=0, executor="local", run_id=name
        ),
    )
    elapsed = time.perf_counter() - started
    after = sim.stats()
    rows = read_results(open_store(store), name).to_pylist()
    cost = sum(r["cost_usd"] for r in rows)
    uncached = cost + sum(r["usd_saved_batch"] + r["usd_saved_cache"] for r in rows)
    output_rate = PRICE["output_per_mtok"] / 1e6
    paid_output = sum(r["output_tokens"] * output_rate * (0.5 if r["batch"] else 1) for r in rows)
    uncached_input = sum(r["input_tokens"] for r in rows) * PRICE["input_per_mtok"] / 1e6
    return {
        "mode": name,
        "status": result.status,
        "rows": len(rows),
        "errors": sum(1 for r in rows if r["error_kind"]),
        "seconds": round(elapsed, 2),
        "cost_usd": cost,
        "cost_per_sample_usd": cost / max(1, len(rows)),
        "sync_uncached_per_sample_usd": uncached / max(1, len(rows)),
        "input_cost_x_uncached": (cost - paid_output) / uncached_input if uncached_input else None,
        "cached_input_tokens": sum(r["cached_input_tokens"] for r in rows),
        "input_tokens": sum(r["input_tokens"] for r in rows),
        "sync_calls": after["by_outcome"]["ok"] - before["by_outcome"]["ok"],
        "batches": after["batches"]["created"] - before["batches"]["created"],
        "batched_requests": after["batches"]["requests_submitted"]
        - before["batches"]["requests_submitted"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=5000)
    parser.add_argument("--turnaround", type=float, default=2.0)
    parser.add_argument("--prefix-tokens", type=int, default=2000)
    args = parser.parse_args()
    os.environ.setdefault(KEY_ENV, "sk-bench-not-a-real-key")
    from evalcluster.simulator import SimulatorConfig, SimulatorProcess

    config = SimulatorConfig(batch_turnaround_s=args.turnaround)
    with tempfile.TemporaryDirectory() as tmp, SimulatorProcess(config) as sim:
        work = Path(tmp)
        sync = one_run(work, sim, args.samples, "sync")
        batch = one_run(work, sim, args.samples, "batch")
        system = shared_prefix(args.prefix_tokens)
        cached_sync = one_run(work, sim, args.samples, "sync", system=system)
        cached_batch = one_run(work, sim, args.samples, "batch", system=system)
    for figures in (sync, batch, cached_sync, cached_batch):
        print(json.dumps(figures))
    ratio = batch["cost_per_sample_usd"] / sync["cost_per_sample_usd"]
    print(f"cost per sample, batch / sync: {ratio:.3f}")
    print(
        f"model calls sent one by one: sync {sync['sync_calls']}, batch {batch['sync_calls']} "
        f"(in {batch['batches']} batches of {batch['batched_requests']} requests)"
    )
    for figures in (cached_sync, cached_batch):
        base = figures["sync_uncached_per_sample_usd"]
        print(
            f"{figures['mode']}: cost per sample x uncached sync "
            f"{figures['cost_per_sample_usd'] / base:.3f}, input cost x uncached "
            f"{figures['input_cost_x_uncached']:.3f}, cached input "
            f"{figures['cached_input_tokens']:,} of {figures['input_tokens']:,} tokens"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
