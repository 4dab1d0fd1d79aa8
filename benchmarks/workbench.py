"""Workbench latency on a 100,000-row run: its JSON routes, and the page in a real browser.

    .venv/bin/python benchmarks/workbench.py [--rows 100000] [--targets 2] [--shard-size 500]

Starts a local Ray and the service (one runner tenant), writes the run's rows straight into the
store through the store API (`evalcluster.store.lake.commit_shard`, with an owner record so the
tenant sees it) instead of running them, then measures:

- API: each workbench route, the first call (cold: the replica reads the run's filterable
  columns) and the median of the next five (warm; the summary is then served from the
  replica's cache), and the summary again after a new label (computed again, then cached);
- page (Playwright driving /usr/bin/chromium): first paint of the samples page (navigation to
  the first row of the table), a filter (submit to the new rows), a drawer (click to the
  dialog with the sample's output), each the first time and the median of the next three.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import yaml
from local_service import local_serve

KEY = "bench-workbench-key-not-secret"
RUN = "run-workbench-bench"


def _row(target: str, i: int, finished: datetime) -> dict[str, Any]:
    right = (i * 7919 + len(target)) % 10 < 7
    error = i % 997 == 0
    return {
        "run_id": RUN,
        "suite": "bench",
        "suite_version": "v-bench",
        "target": target,
        "provider": f"prov-{target}",
        "served_by": f"prov-{target}",
        "model": "sim-1",
        "sample_id": f"s{i:07d}",
        "epoch": 0,
        "prompt": f"Question {i}: what is {i} + {i % 13}? Answer with the number only.",
        "reference": str(i + i % 13),
        "output": None if error else (str(i + i % 13) if right else f"I think it is {i}"),
        "finish_reason": None if error else "stop",
        "input_tokens": 20,
        "output_tokens": 4,
        "usage_estimated": False,
        "cost_usd": 0.00002,
        "latency_ms": 20.0 + (i * 31) % 400,
        "attempts": 1,
        "cache_hit": i % 50 == 0,
        "error_kind": "rate_limited" if error else None,
        "error": "HTTP 429 after 6 attempts" if error else None,
        "request_hash": f"h{i:012d}",
        "finished_at": finished,
        "metadata": json.dumps({"level": ("easy", "medium", "hard")[i % 3]}),
        "judge": None,
        "judge_input_tokens": 0,
        "judge_output_tokens": 0,
        "judge_cost_usd": 0.0,
        "batch": False,
        "cached_input_tokens": 0,
        "usd_saved_batch": 0.0,
        "usd_saved_cache": 0.0,
        "score_exact": None if error else float(right),
        "score_numeric": None if error else float(right),
    }


def write_lake(store_path: Path, rows: int, targets: int, shard_size: int) -> float:
    from evalcluster.serve.owners import RunOwner, write_owner
    from evalcluster.serve.quotas import mark_run
    from evalcluster.store.fs import open_store
    from evalcluster.store.lake import commit_shard
    from evalcluster.store.manifest import RunManifest, write_manifest

    started = time.perf_counter()
    store = open_store(str(store_path))
    now = datetime.now(UTC)
    names = [f"t{k}" for k in range(targets)]
    per_target = rows // targets
    for target in names:
        for k, start in enumerate(range(0, per_target, shard_size)):
            batch = [
                _row(target, i, now) for i in range(start, min(per_target, start + shard_size))
            ]
            commit_shard(store, RUN, target, k, batch, ["exact", "numeric"])
    write_manifest(
        store,
        RunManifest(
            run_id=RUN,
            suite="bench",
            suite_version="v-bench",
            status="finished",
            store_uri=store.uri,
            targets=names,
            spec={"name": "bench", "group_by": ["level"]},
        ),
    )
    tenant = "bench"
    write_owner(
        store,
        RunOwner(
            run_id=RUN,
            tenant=tenant,
            key_id="bench",
            suite="bench",
            suite_version="v-bench",
            created_at=now.isoformat(),
        ),  # fmt: skip
    )
    mark_run(store, tenant, RUN, now.isoformat()[:10])
    return time.perf_counter() - started


def timed(fn: Callable[[], Any], repeats: int) -> tuple[float, float]:
    """(first call, median of the next `repeats`) in milliseconds."""
    times = []
    for _ in range(repeats + 1):
        started = time.perf_counter()
        fn()
        times.append((time.perf_counter() - started) * 1000)
    return times[0], statistics.median(times[1:])


def api_figures(url: str) -> list[tuple[str, float, float]]:
    base = f"/v1/ui/runs/{RUN}"
    checks = [
        ("summary", f"{base}/summary", {}),
        ("samples, first page", f"{base}/samples", {"limit": 50}),
        ("samples, deep page", f"{base}/samples", {"offset": 60_000, "limit": 50}),
        ("filter: t1 wrong", f"{base}/samples", {"target": "t1", "outcome": "wrong"}),
        ("filter: group hard", f"{base}/samples", {"group": "level:hard"}),
        ("filter: errors", f"{base}/samples", {"outcome": "error"}),
        ("text search", f"{base}/samples", {"q": "think it is 4242"}),
        ("drawer (one sample)", f"{base}/sample", {"target": "t1", "sample_id": "s0031337"}),
        ("review queue", f"{base}/review", {"target": "t0", "scorer": "exact", "mode": "random"}),
        ("compare t0/t1", "/v1/ui/compare",
         {"run_a": RUN, "target_a": "t0", "run_b": RUN, "target_b": "t1", "scorer": "exact"}),
    ]  # fmt: skip
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {KEY}"}, timeout=120) as c:

        def get(path: str, params: dict[str, Any]) -> None:
            response = c.get(path, params=params)
            response.raise_for_status()

        for name, path, params in checks:
            first, warm = timed(lambda p=path, q=params: get(p, q), 5)
            out.append((name, first, warm))
        # A new label changes the summary's cache key: the next call computes it again.
        label = {"target": "t0", "sample_id": "s0000001", "scorer": "exact", "verdict": 1}
        c.post(f"{base}/labels", json=label).raise_for_status()
        first, warm = timed(lambda: get(f"{base}/summary", {}), 5)
        out.append(("summary after a new label", first, warm))
    return out


def page_figures(url: str) -> list[tuple[str, float, float]]:
    from playwright.sync_api import sync_playwright

    results: dict[str, list[float]] = {"first paint": [], "filter": [], "drawer": []}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(120_000)
        page = context.new_page()
        page.goto(f"{url}/ui")
        page.get_by_label("API key").fill(KEY)
        page.get_by_role("button", name="Sign in").click()
        page.get_by_role("heading", name="Runs", exact=True).wait_for()
        for _ in range(4):
            page.goto(f"{url}/ui#/runs")
            page.get_by_role("heading", name="Runs", exact=True).wait_for()
            started = time.perf_counter()
            page.goto(f"{url}/ui#/samples/{RUN}")
            page.locator("tbody tr.clickable").first.wait_for()
            results["first paint"].append((time.perf_counter() - started) * 1000)

            page.get_by_label("Target").select_option("t1")
            page.get_by_label("Outcome").select_option("wrong")
            started = time.perf_counter()
            page.get_by_role("button", name="Filter").click()
            page.locator("tbody tr.clickable td", has_text="t1").first.wait_for()
            page.wait_for_url("**outcome=wrong**")
            page.locator(".pager .count").first.filter(has_text="1–50 of").wait_for()
            results["filter"].append((time.perf_counter() - started) * 1000)

            started = time.perf_counter()
            page.locator("tbody tr.clickable").first.click()
            page.get_by_role("dialog").get_by_label("Output").wait_for()
            results["drawer"].append((time.perf_counter() - started) * 1000)
            page.keyboard.press("Escape")
        browser.close()
    return [(k, v[0], statistics.median(v[1:])) for k, v in results.items()]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--targets", type=int, default=2)
    parser.add_argument("--shard-size", type=int, default=500)
    args = parser.parse_args()

    from ray import serve

    from evalcluster.serve.app import build_app

    with tempfile.TemporaryDirectory(prefix="evalcluster-workbench-") as tmp:
        root = Path(tmp)
        seconds = write_lake(root / "store", args.rows, args.targets, args.shard_size)
        print(f"wrote {args.rows:,} rows ({args.targets} targets, shards of "
              f"{args.shard_size}) in {seconds:.1f} s")  # fmt: skip
        config = root / "serve.yaml"
        config.write_text(
            yaml.safe_dump({"tenants": {"bench": {"api_keys_env": "BENCH_KEYS", "role": "runner"}}})
        )
        os.environ["BENCH_KEYS"] = KEY
        with local_serve(num_cpus=2) as port:
            app = build_app(
                {"config": str(config), "store_uri": str(root / "store"), "tracking_uri": "none"}
            )
            serve.run(app, name="evalcluster", route_prefix="/")
            url = f"http://127.0.0.1:{port}"
            pages = page_figures(url)  # first: its first paint reads the run cold
            apis = api_figures(url)
    print(f"\n{'page':<28} {'first (ms)':>11} {'warm median (ms)':>17}")
    for name, first, warm in pages:
        print(f"{name:<28} {first:>11.0f} {warm:>17.0f}")
    print(f"\n{'API route':<28} {'first (ms)':>11} {'warm median (ms)':>17}")
    for name, first, warm in apis:
        print(f"{name:<28} {first:>11.0f} {warm:>17.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
