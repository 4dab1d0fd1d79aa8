"""The `evalcluster` command line without a Ray cluster: options, help, what it imports,
`submit`'s job command line and dry run, `compare`'s suite check, `providers`' address, and
how an embedded run starts Ray. Nothing here starts Ray."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import socket
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from evalcluster.cli import build_parser, main
from tests.conftest import REPO

SUITE = str(REPO / "examples" / "arithmetic.yaml")
CONSOLE_SCRIPT = str(Path(sys.executable).parent / "evalcluster")


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return dict(sub.choices)


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _no_ray_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}


def test_every_option_of_every_command_has_help():
    from evalcluster.simulator.cli import build_parser as simulator_parser

    parsers = {"evalcluster": build_parser(), **_subcommands(build_parser())}
    parsers["simulate (options)"] = simulator_parser()
    missing = [
        f"{name} {'/'.join(a.option_strings) or a.dest}"
        for name, parser in parsers.items()
        for a in parser._actions
        if not (a.help or "").strip()
    ]
    assert missing == []


def test_version_prints_the_package_version(capsys):
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out == f"evalcluster {version('evalcluster')}\n"


NO_HEAVY_IMPORTS = """
import contextlib, json, sys
from evalcluster.cli import main
codes = {}
with contextlib.redirect_stdout(sys.stderr):
    for argv in json.loads(sys.argv[1]):
        try:
            codes[argv[0]] = main(argv)
        except SystemExit as exc:
            codes[argv[0]] = exc.code
heavy = sorted({m.split(".")[0] for m in sys.modules} & {"ray", "mlflow"})
print(json.dumps({"codes": codes, "heavy": heavy}))
"""


def test_help_runs_results_compare_and_providers_import_neither_ray_nor_mlflow(tmp_path):
    store = str(tmp_path / "store")
    commands = [
        ["--help"],
        ["runs", "--store", store],
        ["results", "nope", "--store", store],
        ["compare", "a", "b", "--store", store],
        ["providers", "--suite", SUITE],
    ]
    done = subprocess.run(
        [sys.executable, "-c", NO_HEAVY_IMPORTS, json.dumps(commands)],
        capture_output=True,
        text=True,
        timeout=120,
        env=_no_ray_env(),
    )
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout)
    # --help and runs succeed; results/compare of unknown runs fail; providers lists the suite's
    assert report["codes"] == {"--help": 0, "runs": 0, "results": 1, "compare": 1, "providers": 0}
    assert report["heavy"] == []


def _run_option_actions() -> list[argparse.Action]:
    from evalcluster.jobs.run_suite import add_run_arguments

    parser = argparse.ArgumentParser(add_help=False)
    add_run_arguments(parser)
    return parser._actions


def _value_for(action: argparse.Action, index: int) -> object:
    """A value for the option that is not its default, whatever kind of option it is."""
    if isinstance(action, argparse._StoreTrueAction):
        return True
    if isinstance(action, argparse._AppendAction):
        return [f"t{index}a", f"t{index}b"]
    if action.choices:
        return [c for c in action.choices if c != action.default][0]
    if action.type is int:
        return 1000 + index
    if action.type is float:
        return 0.25 + index
    return f"/abs/value-{index}" if action.dest in ("store",) else f"value-{index}"


def test_submit_forwards_every_run_option_to_the_job():
    """Every option `add_run_arguments` defines (bar --dry-run, which submit acts on itself)
    reaches the job with the value given: one added later is covered with no change here."""
    from evalcluster.commands import SUBMIT_ONLY_OPTIONS, job_entrypoint
    from evalcluster.jobs.run_suite import add_run_arguments

    actions = _run_option_actions()
    given = {a.dest: _value_for(a, i) for i, a in enumerate(actions)}
    given["tracking_uri"] = "http://mlflow.example:5000"  # left as it is, like s3:// stores
    given["store"] = "s3://bucket/prefix"
    args = argparse.Namespace(**given, address="http://head:8265", follow=False, working_dir=".")

    entrypoint = job_entrypoint(args)
    assert entrypoint[:3] == ["python", "-m", "evalcluster.jobs.run_suite"]
    assert shlex.split(shlex.join(entrypoint)) == entrypoint
    job_parser = argparse.ArgumentParser()
    add_run_arguments(job_parser)
    received = vars(job_parser.parse_args(entrypoint[3:]))
    assert {"dry_run"} == SUBMIT_ONLY_OPTIONS
    for dest, value in given.items():
        if dest in SUBMIT_ONLY_OPTIONS:
            assert received[dest] is False, dest
        else:
            assert received[dest] == value, dest
    assert "--dry-run" not in entrypoint
    assert entrypoint[entrypoint.index("--max-traced-samples") + 1].isdigit()


def test_submit_makes_local_paths_absolute(tmp_path, monkeypatch):
    from evalcluster.commands import job_entrypoint

    monkeypatch.chdir(tmp_path)
    args = build_parser().parse_args(
        ["submit", "suite.yaml", "--address", "http://h:8265", "--tracking-uri", "none"]
    )
    entrypoint = job_entrypoint(args)
    assert entrypoint[entrypoint.index("--store") + 1] == str(tmp_path / "evalstore")
    assert entrypoint[entrypoint.index("--tracking-uri") + 1] == "none"
    args.tracking_uri = "sqlite:///db/mlflow.db"
    entrypoint = job_entrypoint(args)
    tracking = entrypoint[entrypoint.index("--tracking-uri") + 1]
    assert tracking == f"sqlite:///{tmp_path}/db/mlflow.db"


def test_submit_dry_run_validates_prints_the_job_and_never_contacts_the_cluster(tmp_path):
    address = f"http://127.0.0.1:{_closed_port()}"  # nothing listens: a client would fail
    common = [CONSOLE_SCRIPT, "submit", SUITE, "--address", address, "--dry-run"]
    done = subprocess.run(
        [*common, "--max-traced-samples", "7", "--target", "sim-weak", "--no-cache"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "nothing was submitted" in done.stdout
    assert "plan: arithmetic" in done.stdout and "sim-strong" not in done.stdout
    (line,) = [x for x in done.stdout.splitlines() if x.strip().startswith("entrypoint:")]
    entrypoint = shlex.split(line.split(":", 1)[1])
    assert entrypoint[entrypoint.index("--max-traced-samples") + 1] == "7"
    assert "--no-cache" in entrypoint and "--dry-run" not in entrypoint
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no store, no MLflow database

    bad = subprocess.run(
        [*common, "--target", "nope"], cwd=tmp_path, capture_output=True, text=True, timeout=120
    )
    assert bad.returncode == 2 and "unknown target 'nope'" in bad.stderr


def test_compare_of_runs_of_different_suites_exits_2(tmp_path, capsys):
    from evalcluster.store.fs import open_store
    from evalcluster.store.manifest import RunManifest, write_manifest

    store = open_store(str(tmp_path / "store"))
    for run_id, suite in (("a1", "arithmetic"), ("a2", "arithmetic"), ("q1", "trivia")):
        write_manifest(
            store,
            RunManifest(run_id=run_id, suite=suite, suite_version="v", store_uri=store.uri),
        )
    assert main(["compare", "a1", "q1", "--store", str(tmp_path / "store")]) == 2
    err = capsys.readouterr().err
    assert "different suites" in err and "'arithmetic'" in err and "'trivia'" in err
    assert main(["compare", "a1", "a2", "--store", str(tmp_path / "store")]) == 0


def test_providers_needs_an_address_and_never_attaches_to_a_cluster_it_finds(tmp_path):
    code = (
        "import sys; from evalcluster.cli import main; rc = main(['providers']); "
        "assert 'ray' not in sys.modules, 'imported ray'; sys.exit(rc)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        env=_no_ray_env(),
    )
    assert done.returncode == 2, done.stderr[-3000:]
    assert "no Ray cluster given" in done.stderr and "--address" in done.stderr


def test_providers_address_defaults_to_ray_address(monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert build_parser(run_options=False).parse_args(["providers"]).address == "10.0.0.1:6379"
    monkeypatch.delenv("RAY_ADDRESS")
    assert build_parser(run_options=False).parse_args(["providers"]).address is None


class _FakeRay:
    def __init__(self, initialized: bool):
        self.initialized = initialized
        self.calls: list[tuple[str, dict]] = []

    def is_initialized(self) -> bool:
        return self.initialized

    def init(self, **kwargs) -> None:
        self.calls.append(("init", kwargs))
        self.initialized = True

    def shutdown(self) -> None:
        self.calls.append(("shutdown", {}))
        self.initialized = False


@pytest.mark.parametrize(
    ("initialized", "address", "expected"),
    [
        (False, None, [("init", "local"), "shutdown"]),  # embedded: a Ray of its own
        (False, "10.0.0.1:6379", [("init", "10.0.0.1:6379"), "shutdown"]),
        (True, None, []),  # a Ray this process started (tests do): reused, left running
        (True, "10.0.0.1:6379", []),
    ],
)
def test_ray_session_starts_its_own_ray_unless_given_an_address_or_one_is_running(
    monkeypatch, initialized, address, expected
):
    from evalcluster.jobs import driver

    fake = _FakeRay(initialized)
    monkeypatch.setattr(driver, "ray", fake)
    with driver.ray_session(address):
        pass
    seen = [("init", kw.get("address")) if name == "init" else name for name, kw in fake.calls]
    assert seen == expected
