"""Where does a run's fixed cost go? A bare client against the timeline of `evalcluster run`.

    .venv/bin/python benchmarks/overhead.py              # 2,000 samples, 50 ms, 64 in flight
    .venv/bin/python benchmarks/overhead.py --samples 5000 --latency-ms 0 --in-flight 128

One invocation, one machine, one simulator (the project's `SimulatorServer`, started here in a
subprocess on a free port, OpenAI wire format, the given fixed latency; this script adds a
middleware that notes when provider requests arrive and are answered, at ``/bench/times``):

1. bare: a bare aiohttp client sends the suite's N requests (the same bodies the suite's
   `kind: openai` provider sends) with K in flight; wall time. Once before the runs and once
   after them; the ratios use the mean of the two.
2. fresh: `evalcluster run SUITE --store <tmp>/store --tracking-uri sqlite:///<tmp>/mlflow.db`
   as a subprocess (`--executor`, default auto: in-process, no Ray; `ray`: its own embedded
   Ray), the suite's provider `kind: openai` with `base_url`
   the simulator and `max_concurrency` K. Its stderr is a pseudo-terminal, so the CLI draws its
   progress bar, and each phase the display shows ("starting Ray", "starting providers",
   "starting MLflow", "running", "writing summary", "writing MLflow", "shutting down",
   "finished") is timestamped when it is drawn (a phase is drawn at once). The simulator gives
   the first request's arrival and the last answer; the run's manifest gives each shard's
   commit; ``_summary.json`` and ``mlflow.db`` give their last write. When MLflow is logged by
   a detached worker (the CLI's default), the script waits for its ``_mlflow.json`` to say
   ``logged`` before going on (so that it does not share the CPU with the next run) and shows
   when it did.
3. cached: the same command again with a new run id on the same store: every answer comes
   from the response cache; wall time and the simulator's request count (should be 0), and
   how many times faster than the paid run it is; for both, the time to the first committed
   row (process start to the first shard commit in the manifest).
4. `evalcluster --help` (median of a few), and, for the ranking of the start-up cost, how long
   importing the run command takes in a fresh interpreter and its largest imports
   (``python -X importtime``).

Not a test: the figures depend on the machine and on what else runs on it; compare within one
run of the script.
"""

from __future__ import annotations

import argparse
import asyncio
import fcntl
import json
import os
import pty
import re
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import threading
import time
from datetime import datetime
from pathlib import Path
from typing import Any

KEY_ENV = "EVALCLUSTER_BENCH_KEY"
PROMPT = "What is {question}? Answer with the number only."
MODEL = "sim-1"
MAX_TOKENS = 16
# What the display shows, in the order a run goes through them (driver.py's on_phase, then
# run_suite.execute's final status).
PHASES = (
    "starting simulators",
    "starting Ray",
    "starting providers",
    "starting MLflow",
    "running",
    "writing summary",
    "writing MLflow",
    "shutting down",
    "finished",
)
_ANSI = re.compile(r"\x1b\[[0-?]*[ -/]*[@-~]|\x1b\][^\x07]*\x07|\x1b[()][0-9A-Za-z]|[\r\x07]")
_WALL = re.compile(r"run \S+: (\w+)\s+\((\d+(?:\.\d+)?)s\)")
LISTENING = "overhead simulator listening on"


# --- the simulator, instrumented (runs in its own process: `--serve-simulator`) ------------
def serve_simulator(latency_ms: float) -> None:
    from aiohttp import web

    from evalcluster.simulator.config import SimulatorConfig
    from evalcluster.simulator.server import SimulatorServer
    from evalcluster.simulator.serving import SHUTDOWN_TIMEOUT_S, new_event_loop

    times: dict[str, Any] = {}

    def reset() -> None:
        times.update(count=0, first_arrival=None, last_arrival=None, last_answer=None)

    reset()

    @web.middleware
    async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
        if not request.path.startswith("/v1/"):
            return await handler(request)
        now = time.time()
        times["count"] += 1
        if times["first_arrival"] is None:
            times["first_arrival"] = now
        times["last_arrival"] = now
        try:
            return await handler(request)
        finally:
            times["last_answer"] = time.time()

    async def get_times(request: web.Request) -> web.Response:
        return web.json_response(times)

    async def post_reset(request: web.Request) -> web.Response:
        reset()
        return web.json_response(times)

    async def main() -> None:
        server = SimulatorServer(SimulatorConfig(latency_ms=latency_ms))
        app = server.app()
        app.middlewares.append(stamp)
        app.router.add_get("/bench/times", get_times)
        app.router.add_post("/bench/reset", post_reset)
        runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=SHUTDOWN_TIMEOUT_S
        )
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=2048)
        await site.start()
        print(f"{LISTENING} http://127.0.0.1:{runner.addresses[0][1]}", flush=True)
        await asyncio.Event().wait()  # until the parent terminates us

    loop = new_event_loop()
    asyncio.set_event_loop(loop)
    loop.run_until_complete(main())


class Simulator:
    def __init__(self, latency_ms: float):
        cmd = [sys.executable, __file__, "--serve-simulator", "--latency-ms", str(latency_ms)]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        if LISTENING not in line:
            self.proc.kill()
            raise RuntimeError(f"the simulator did not start: {line!r}")
        self.url = line.split()[-1]

    def _call(self, method: str, path: str) -> dict[str, Any]:
        import urllib.request

        req = urllib.request.Request(self.url + path, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.loads(resp.read())

    def reset(self) -> None:
        self._call("POST", "/bench/reset")

    def times(self) -> dict[str, Any]:
        return self._call("GET", "/bench/times")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# --- the suite and the bare client -----------------------------------------------------------
def questions(samples: int) -> list[str]:
    return [f"{i} + 7" for i in range(samples)]


def write_suite(folder: Path, url: str, samples: int, in_flight: int, shard_size: int) -> Path:
    import yaml

    data = folder / "data.jsonl"
    with data.open("w") as f:
        for i, q in enumerate(questions(samples)):
            f.write(json.dumps({"id": f"q{i}", "question": q, "answer": str(i + 7)}) + "\n")
    suite = {
        "name": "bench-overhead",
        "dataset": {"path": str(data), "id": "id", "input": "question", "target": "answer"},
        "prompt": PROMPT,
        "scorers": [{"type": "numeric"}, {"type": "exact"}],
        "shard_size": shard_size,
        "targets": [
            {"name": "t", "provider": "sim", "model": MODEL, "params": {"max_tokens": MAX_TOKENS}}
        ],
        "providers": {
            "sim": {
                "kind": "openai",
                "base_url": url + "/v1",
                "api_key_env": KEY_ENV,
                "max_concurrency": in_flight,
            }
        },
    }
    path = folder / "suite.yaml"
    path.write_text(yaml.safe_dump(suite, sort_keys=False))
    return path


async def bare_client(url: str, samples: int, in_flight: int) -> float:
    """Seconds for a bare aiohttp client to get the suite's answers, `in_flight` at a time.
    The bodies are what the `kind: openai` adapter sends for this suite."""
    from evalcluster.simulator.bench import send_all

    bodies = [
        {
            "model": MODEL,
            "messages": [{"role": "user", "content": PROMPT.format(question=q)}],
            "max_completion_tokens": MAX_TOKENS,
        }
        for q in questions(samples)
    ]
    return await send_all(url, bodies, in_flight)


# --- the CLI under a pseudo-terminal ----------------------------------------------------------
def cli_path() -> str:
    path = Path(sys.executable).with_name("evalcluster")
    return str(path) if path.exists() else "evalcluster"


def run_cli(cmd: list[str], cwd: Path) -> dict[str, Any]:
    """Run `cmd` (`evalcluster run ...`) with stderr on a pseudo-terminal; return the wall
    time, when each display phase was first drawn (seconds from the start), the exit code and
    stdout."""
    master, slave = pty.openpty()
    # wide enough that no phase name is cut
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 50, 200, 0, 0))
    env = {k: v for k, v in os.environ.items() if k not in ("RAY_ADDRESS", "NO_COLOR")}
    env.update({KEY_ENV: "bench", "TERM": "xterm-256color", "COLUMNS": "200", "LINES": "50"})
    seen: dict[str, float] = {}
    first_output: list[float] = []
    text: list[str] = [""]

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer closed the terminal
                return
            if not chunk:
                return
            now = time.time()
            if not first_output:
                first_output.append(now)
            text[0] += _ANSI.sub("", chunk.decode("utf-8", "replace"))
            for name in PHASES:
                if name not in seen and name in text[0]:
                    seen[name] = now

    started = time.time()
    proc = subprocess.Popen(
        cmd,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=slave,
        cwd=cwd,
        env=env,
        text=True,
    )
    os.close(slave)
    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    stdout, _ = proc.communicate()
    ended = time.time()
    reader.join(timeout=5)
    os.close(master)
    wall = _WALL.search(stdout)
    return {
        "started": started,
        "wall_s": ended - started,
        "rc": proc.returncode,
        "phases": {k: v - started for k, v in seen.items()},
        "display_up": first_output[0] - started if first_output else None,
        "driver_wall_s": float(wall.group(2)) if wall else None,
        "stdout": stdout,
        "stderr_text": text[0],
    }


EVENTS = {  # key: how the table names it
    "start": "process start",
    "display": "display up (imports, suite loaded)",
    "ray": "starting Ray",
    "providers": "Ray up (starting providers)",
    "mlflow": "providers up (starting MLflow)",
    "running": "MLflow run open (running)",
    "first_request": "first request (simulator)",
    "first_commit": "first shard commit (manifest)",
    "last_answer": "last answer (simulator)",
    "last_commit": "last shard commit (manifest)",
    "summary": "writing summary",
    "summary_file": "summary written (_summary.json)",
    "mlflow_finish": "writing MLflow",
    "shutdown": "MLflow written (shutting down)",
    "mlflow_db": "mlflow.db last write",
    "finished": "final status drawn (finished; Ray stops after the table)",
    "exit": "exit",
    "mlflow_logged": "MLflow logged by its worker (_mlflow.json)",
}
SPANS = (  # (label, from event, to event)
    ("interpreter, imports, suite load", "start", "display"),
    ("display up -> starting Ray", "display", "ray"),
    ("Ray start (ray.init, run registry)", "ray", "providers"),
    ("provider actors", "providers", "mlflow"),
    ("MLflow import + run start", "mlflow", "running"),
    ("running -> first request", "running", "first_request"),
    ("requests (first request -> last answer)", "first_request", "last_answer"),
    ("last answer -> last commit", "last_answer", "last_commit"),
    ("  (running -> last commit: the 3 above)", "running", "last_commit"),
    ("last commit -> writing summary", "last_commit", "summary"),
    ("summary", "summary", "summary_file"),
    ("MLflow finish (metrics, traces)", "mlflow_finish", "shutdown"),
    ("shutdown (Ray stop)", "shutdown", "finished"),
    ("result table + exit (Ray stop, after the table)", "finished", "exit"),
    ("MLflow worker after the exit (detached)", "exit", "mlflow_logged"),
)


def run_timeline(
    run: dict[str, Any], sim_times: dict[str, Any], store: Path, run_id: str, mlflow_db: Path
) -> dict[str, Any]:
    """The run's events (EVENTS), in seconds from its process start."""
    t0 = run["started"]

    def rel(stamp: float | None) -> float | None:
        return None if stamp is None else stamp - t0

    def mtime(path: Path) -> float | None:
        return path.stat().st_mtime - t0 if path.exists() else None

    run_dir = store / "runs" / f"run_id={run_id}"
    commits: list[float] = []
    manifest_path = run_dir / "_manifest.json"
    if manifest_path.exists():
        manifest = json.loads(manifest_path.read_text())
        for shards in (manifest.get("shards") or {}).values():
            for record in shards.values():
                commits.append(datetime.fromisoformat(record["committed_at"]).timestamp() - t0)
    commits.sort()
    ph = run["phases"]
    events: dict[str, float | None] = {
        "start": 0.0,
        "display": run["display_up"],
        "ray": ph.get("starting Ray"),
        "providers": ph.get("starting providers"),
        "mlflow": ph.get("starting MLflow"),
        "running": ph.get("running"),
        "first_request": rel(sim_times.get("first_arrival")),
        "first_commit": commits[0] if commits else None,
        "last_answer": rel(sim_times.get("last_answer")),
        "last_commit": commits[-1] if commits else None,
        "summary": ph.get("writing summary"),
        "summary_file": mtime(run_dir / "_summary.json"),
        "mlflow_finish": ph.get("writing MLflow"),
        # `evalcluster run` stops Ray after the table: no "shutting down" is drawn then
        "shutdown": ph.get("shutting down", ph.get("finished")),
        "mlflow_db": mtime(mlflow_db),
        "finished": ph.get("finished"),
        "exit": run["wall_s"],
        "mlflow_logged": None,
    }
    status_path = run_dir / "_mlflow.json"
    if status_path.exists():
        status = json.loads(status_path.read_text())
        if status.get("status") == "logged":
            events["mlflow_logged"] = datetime.fromisoformat(status["at"]).timestamp() - t0
    return {"events": events, "commits": commits}


def wait_for_mlflow(store: Path, run_id: str, timeout_s: float = 180.0) -> str | None:
    """Wait until the run's detached MLflow worker has finished (so that it does not share the
    CPU with the next run); its final status, or None when there is no worker."""
    path = store / "runs" / f"run_id={run_id}" / "_mlflow.json"
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = json.loads(path.read_text()).get("status") if path.exists() else "pending"
        if status not in ("pending", "running"):
            return status
        time.sleep(0.05)
    return None


def spans(events: dict[str, float | None]) -> list[tuple[str, float | None]]:
    out = []
    for label, a, b in SPANS:
        ta, tb = events.get(a), events.get(b)
        out.append((label, None if ta is None or tb is None else tb - ta))
    return out


# --- start-up costs ---------------------------------------------------------------------------
def timed(cmd: list[str], cwd: Path) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def largest_imports(cwd: Path, module: str, top: int = 8) -> list[tuple[str, float]]:
    """What evalcluster's own modules import, by package, with everything those imports pull
    in (s, ``-X importtime`` in a fresh interpreter importing `module`): e.g. pyarrow's numpy
    counts under pyarrow when pyarrow brings it in first."""
    out = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", f"import {module}"],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=True,
    ).stderr
    rows = []
    for line in out.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m:
            rows.append((len(m.group(2)), m.group(3).split(".")[0], int(m.group(1)) / 1e6))
    totals: dict[str, float] = {}
    stack: list[tuple[int, str]] = []
    for indent, root, cumulative in reversed(rows):  # parents first
        while stack and stack[-1][0] >= indent:
            stack.pop()
        if root != "evalcluster" and all(r == "evalcluster" for _, r in stack):
            totals[root] = totals.get(root, 0.0) + cumulative
        stack.append((indent, root))
    return sorted(totals.items(), key=lambda kv: -kv[1])[:top]


# --- report -----------------------------------------------------------------------------------
def fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--samples", type=int, default=2000)
    p.add_argument("--latency-ms", type=float, default=50.0)
    p.add_argument("--in-flight", type=int, default=64, help="bare client's K and max_concurrency")
    p.add_argument("--shard-size", type=int, default=256)
    p.add_argument("--help-runs", type=int, default=3, help="`evalcluster --help` timings")
    p.add_argument(
        "--executor",
        choices=("auto", "ray", "local"),
        default="auto",
        help="the runs' --executor (default auto: local, in the CLI's process)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp folder and print it")
    p.add_argument("--json", metavar="PATH", help="also write the figures to PATH as JSON")
    p.add_argument("--serve-simulator", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve_simulator:
        serve_simulator(args.latency_ms)
        return

    folder = Path(tempfile.mkdtemp(prefix="evalcluster-overhead-"))
    sim = Simulator(args.latency_ms)
    try:
        report(args, folder, sim)
    finally:
        sim.stop()
        if args.keep:
            print(f"kept: {folder}")
        else:
            import shutil

            shutil.rmtree(folder, ignore_errors=True)


def report(args: argparse.Namespace, folder: Path, sim: Simulator) -> None:
    n, k = args.samples, args.in_flight
    print(f"load average at the start: {os.getloadavg()[0]:.1f}")
    suite = write_suite(folder, sim.url, n, k, args.shard_size)
    store, mlflow_db = folder / "store", folder / "mlflow.db"
    common = [
        "--store",
        str(store),
        "--tracking-uri",
        f"sqlite:///{mlflow_db}",
        "--executor",
        args.executor,
    ]
    print(
        f"overhead: {n} samples, simulator latency {args.latency_ms:g} ms, {k} in flight, "
        f"shard size {args.shard_size}, executor {args.executor}; provider kind openai at "
        f"{sim.url}/v1; "
        f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}",
        flush=True,
    )

    bare: list[float] = []
    sim.reset()
    bare.append(asyncio.run(bare_client(sim.url, n, k)))
    assert sim.times()["count"] == n
    print(f"  bare client #1: {bare[-1]:.2f} s", flush=True)

    runs: dict[str, dict[str, Any]] = {}
    for label, run_id in (("fresh", "overhead-fresh"), ("cached", "overhead-cached")):
        sim.reset()
        run = run_cli([cli_path(), "run", str(suite), "--run-id", run_id, *common], folder)
        times = sim.times()
        if run["rc"] != 0:
            print(run["stdout"][-3000:], run["stderr_text"][-3000:], sep="\n")
            raise SystemExit(f"evalcluster run ({label}) exited {run['rc']}")
        run["sim"] = times
        run["mlflow_status"] = wait_for_mlflow(store, run_id)
        run["timeline"] = run_timeline(run, times, store, run_id, mlflow_db)
        runs[label] = run
        print(
            f"  evalcluster run ({label}): {run['wall_s']:.2f} s, "
            f"{times['count']} requests reached the simulator; MLflow "
            f"{run['mlflow_status']}",
            flush=True,
        )

    sim.reset()
    bare.append(asyncio.run(bare_client(sim.url, n, k)))
    print(f"  bare client #2: {bare[-1]:.2f} s", flush=True)

    helps = [timed([cli_path(), "--help"], folder) for _ in range(args.help_runs)]
    run_help = timed([cli_path(), "run", "--help"], folder)
    import_run = timed(
        [sys.executable, "-c", "import evalcluster.cli, evalcluster.jobs.run_suite"], folder
    )
    import_mlflow = timed([sys.executable, "-c", "import mlflow, evalcluster.tracking"], folder)
    top_imports = largest_imports(folder, "evalcluster.jobs.run_suite")

    # -- table of events
    fresh, cached = runs["fresh"], runs["cached"]
    fe, ce = fresh["timeline"]["events"], cached["timeline"]["events"]
    print()
    print(f"{'event (s from process start)':<40} {'fresh':>8} {'cached':>8}")
    for key, label in EVENTS.items():
        print(f"{label:<40} {fmt(fe[key]):>8} {fmt(ce[key]):>8}")
    commits = fresh["timeline"]["commits"]
    print(f"fresh run's shard commits ({len(commits)}): " + " ".join(f"{c:.2f}" for c in commits))
    print()
    print(f"{'span (s)':<40} {'fresh':>8} {'cached':>8}")
    for (name, a), (_, b) in zip(spans(fe), spans(ce), strict=True):
        print(f"{name:<40} {fmt(a):>8} {fmt(b):>8}")

    ranked = sorted(
        ((s, name) for name, s in spans(fe) if s is not None and "the 3 above" not in name),
        reverse=True,
    )
    print("largest spans (fresh): " + ", ".join(f"{name} {s:.2f}" for s, name in ranked[:6]))
    bare_wall = statistics.mean(bare)
    req_phase = None
    if fe["first_request"] is not None and fe["last_answer"] is not None:
        req_phase = fe["last_answer"] - fe["first_request"]
    ideal = n / k * args.latency_ms / 1000
    print()
    print(
        f"bare client wall: {' / '.join(f'{b:.2f}' for b in bare)} s "
        f"(mean {bare_wall:.2f} s; latency-bound ideal N/K x latency {ideal:.2f} s)"
    )
    print(
        f"evalcluster run wall (CLI, fresh): {fresh['wall_s']:.2f} s "
        f"(driver's own wall_s {fmt(fresh['driver_wall_s'], 1)} s)  "
        f"ratio to bare: {fresh['wall_s'] / bare_wall:.1f}x"
    )
    if req_phase is not None:
        print(
            f"request phase (simulator's first request -> last answer): {req_phase:.2f} s  "
            f"ratio to bare: {req_phase / bare_wall:.2f}x  "
            f"({req_phase / fresh['wall_s']:.0%} of the CLI wall)"
        )
    print(
        f"cached re-run wall: {cached['wall_s']:.2f} s "
        f"({cached['wall_s'] / fresh['wall_s']:.0%} of fresh, "
        f"{fresh['wall_s'] / cached['wall_s']:.1f}x faster than the paid run); "
        f"requests reaching the simulator: {cached['sim']['count']}"
    )
    print(
        f"time to first committed row (process start -> first shard commit): "
        f"fresh {fmt(fe['first_commit'])} s, cached {fmt(ce['first_commit'])} s"
    )
    print(
        f"`evalcluster --help`: {statistics.median(helps):.2f} s (median of "
        + ", ".join(f"{h:.2f}" for h in helps)
        + f"); `evalcluster run --help`: {run_help:.2f} s"
    )
    print(
        f"fresh interpreter: import evalcluster.cli + jobs.run_suite {import_run:.2f} s, "
        f"import mlflow + evalcluster.tracking {import_mlflow:.2f} s; largest imports under "
        "jobs.run_suite: " + ", ".join(f"{name} {s:.2f}" for name, s in top_imports)
    )
    print(f"load average at the end: {os.getloadavg()[0]:.1f}")
    if args.json:
        figures = {
            "config": {"samples": n, "latency_ms": args.latency_ms, "in_flight": k},
            "bare_s": bare,
            "runs": {
                label: {
                    "wall_s": run["wall_s"],
                    "driver_wall_s": run["driver_wall_s"],
                    "requests": run["sim"]["count"],
                    "events": run["timeline"]["events"],
                    "commits": run["timeline"]["commits"],
                }
                for label, run in runs.items()
            },
            "help_s": helps,
            "run_help_s": run_help,
            "import_run_s": import_run,
            "import_mlflow_s": import_mlflow,
            "largest_imports_s": dict(top_imports),
        }
        Path(args.json).write_text(json.dumps(figures, indent=2))


if __name__ == "__main__":
    main()
