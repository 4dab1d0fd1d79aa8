"""Provider kinds from installed packages: the `evalcluster.providers` entry-point group.

The plugin here is a real distribution on a path of its own (a `*.dist-info` folder with its
entry points, found by `importlib.metadata` as pip's would be), used by fresh interpreters so
nothing of this test process's registry leaks in or out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO, write_suite

PLUGIN = '''
from evalcluster.providers.openai import OpenAIAdapter


class HouseAdapter(OpenAIAdapter):
    """A vendor variant of the OpenAI wire format, as a plugin would ship it."""

    kind = "house-llm"


class NotAnAdapter:
    pass
'''
ENTRY_POINTS = """[evalcluster.providers]
house-llm = house_plugin:HouseAdapter
wrong-class = house_plugin:NotAnAdapter
missing-module = house_plugin_gone:Adapter
openai = house_plugin:HouseAdapter
"""


@pytest.fixture
def plugin_path(tmp_path: Path) -> Path:
    """A folder holding an installed distribution `house-plugin` and its module."""
    root = tmp_path / "site"
    info = root / "house_plugin-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: house-plugin\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(ENTRY_POINTS)
    (root / "house_plugin.py").write_text(PLUGIN)
    return root


def _python(code: str, plugin_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(plugin_path), str(REPO)])}
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=120
    )


def test_an_installed_kind_validates_and_resolves_without_being_registered(plugin_path):
    code = """
import json
from evalcluster.errors import SpecError
from evalcluster.providers.registry import adapter_class, known_kinds
from evalcluster.suite.models import ProviderConfig, provider_kinds

out = {"kinds": provider_kinds(), "known": known_kinds()}
ProviderConfig(kind="house-llm", base_url="http://127.0.0.1:1/v1")
out["class"] = adapter_class("house-llm").__name__
out["openai"] = adapter_class("openai").__module__
for kind in ("wrong-class", "missing-module"):
    try:
        adapter_class(kind)
    except SpecError as exc:
        out[kind] = [str(exc), exc.field]
print(json.dumps(out))
"""
    done = _python(code, plugin_path)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert "house-llm" in out["kinds"] and "house-llm" in out["known"]
    assert out["class"] == "HouseAdapter"
    # a plugin may add kinds, never replace a built-in one
    assert out["openai"] == "evalcluster.providers.openai"
    assert "not a ProviderAdapter subclass" in out["wrong-class"][0]
    assert "cannot load its adapter 'house_plugin_gone:Adapter'" in out["missing-module"][0]
    assert out["missing-module"][1] == "kind"


def test_without_the_plugin_the_kind_is_unknown_and_named(plugin_path, tmp_path):
    code = """
from evalcluster.suite.models import ProviderConfig
ProviderConfig(kind="house-llm", base_url="http://127.0.0.1:1/v1")
"""
    done = _python(code, tmp_path / "nothing-installed")
    assert done.returncode != 0
    assert "unknown provider kind 'house-llm'" in done.stderr


@pytest.mark.integration
def test_a_run_uses_the_installed_kind_over_http(plugin_path, tmp_path, sim):
    suite = write_suite(
        tmp_path,
        providers={
            "house": {
                "kind": "house-llm",
                "base_url": f"{sim.url}/v1",
                "api_key_env": "EVALCLUSTER_TEST_KEY",
                "pricing": {"input_per_mtok": 1.0, "output_per_mtok": 2.0},
            }
        },
        targets=[{"name": "house-target", "provider": "house", "model": "sim-1"}],
        samples=6,
    )
    store = tmp_path / "store"
    code = "import sys; from evalcluster.cli import main; sys.exit(main(sys.argv[1:]))"
    done = _python(
        code,
        plugin_path,
        *("run", str(suite), "--store", str(store), "--tracking-uri", "none"),
        *("--executor", "local", "--quiet"),
    )
    assert done.returncode == 0, done.stdout + done.stderr
    rows = [p for p in store.glob("runs/*/target=house-target/*.parquet")]
    assert rows, "no shard committed"
    import pyarrow.parquet as pq

    table = pq.read_table(rows[0].parent)
    assert table.num_rows == 6
    assert set(table.column("provider").to_pylist()) == {"house"}
    assert table.column("error_kind").null_count == 6
