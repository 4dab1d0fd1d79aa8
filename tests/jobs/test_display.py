"""The end-of-run summary table and its number formats (no Ray: plain summaries)."""

from __future__ import annotations

import io
from types import SimpleNamespace

import pytest
from rich.console import Console

from evalcluster.jobs import display
from evalcluster.jobs.display import format_usd, print_result, result_tables


def _stats(n: int, mean: float, low: float | None = None, high: float | None = None) -> dict:
    return {"n": n, "mean": mean, "stderr": 0.1, "ci_low": low, "ci_high": high, "method": "t"}


def _summary() -> dict:
    exact_groups = {
        "topic": {
            "algebra": _stats(12, 0.75, 0.5, 0.9),
            "geometry": _stats(6, 0.5, 0.2, 0.8),
            "[b]": _stats(2, 1.0),  # markup-looking value, no interval
        }
    }
    numeric_groups = {"topic": {"algebra": _stats(11, 0.8, 0.6, 0.95)}}
    return {
        "targets": {
            "sim-openai": {
                "rows": 20,
                "samples": 20,
                "errors": 0,
                "cache_hits": 20,
                "input_tokens": 2100,
                "output_tokens": 40,
                "cost_usd": 0.000042,
                "latency_ms_p50": 12.0,
                "scorers": {
                    "exact": {**_stats(20, 0.7, 0.5, 0.85), "groups": exact_groups},
                    "numeric": {**_stats(19, 0.65, 0.45, 0.8), "groups": numeric_groups},
                },
            }
        }
    }


def _render(renderables) -> str:
    console = Console(width=200, record=True, file=io.StringIO())
    for r in renderables:
        console.print(r)
    return console.export_text()


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0.000042, "0.000042"),
        (0.0000421, "0.000042"),
        (0.00342, "0.0034"),
        (0.009999, "0.0100"),
        (0.0123, "0.0123"),
        (0.5, "0.5000"),
        (1234.5, "1,234.5000"),
        (0.0, "0"),
        (None, "-"),
        (3e-15, "3.0e-15"),
    ],
)
def test_costs_keep_their_first_significant_digits(value, text):
    assert format_usd(value) == text


def test_summary_table_shows_cache_hits_and_small_costs():
    text = _render(result_tables(_summary(), ["exact", "numeric"], title="run r1: done"))
    header = next(line for line in text.splitlines() if "target" in line)
    assert "cached" in header
    row = next(line for line in text.splitlines() if line.strip("│ ").startswith("sim-openai"))
    assert "20/20" in row  # every row of the target came from the cache
    assert "0.000042" in row
    assert "0.0000 " not in row
    assert "0.700 [0.500, 0.850]" in row


def test_summary_table_has_a_block_per_group_column():
    text = _render(result_tables(_summary(), ["exact", "numeric"], group_by=["topic"]))
    assert "by topic" in text
    lines = text.splitlines()
    algebra = next(line for line in lines if "algebra" in line)
    assert "12" in algebra  # the group's size: its largest n over the scorers
    assert "0.750 [0.500, 0.900]" in algebra
    assert "0.800 [0.600, 0.950]" in algebra
    geometry = next(line for line in lines if "geometry" in line)
    assert "0.500 [0.200, 0.800]" in geometry
    assert geometry.rstrip(" │").endswith("-")  # numeric never scored this group
    assert any("[b]" in line and "1.000" in line for line in lines)


def test_group_block_keeps_the_largest_groups_and_counts_the_rest():
    text = _render(result_tables(_summary(), ["exact"], group_by=["topic"], max_groups=2))
    assert "algebra" in text and "geometry" in text
    assert "[b]" not in text
    assert "... and 1 smaller in _summary.json" in text


def test_no_group_block_without_groups():
    summary = _summary()
    for scorer in summary["targets"]["sim-openai"]["scorers"].values():
        scorer["groups"] = {}
    assert len(result_tables(summary, ["exact", "numeric"])) == 1


def test_print_result_prints_the_group_block(monkeypatch: pytest.MonkeyPatch):
    out = Console(width=200, record=True, file=io.StringIO())
    monkeypatch.setattr(display, "stdout", out)
    monkeypatch.setattr(display, "console", out)
    result = SimpleNamespace(
        run_id="r1",
        status="done",
        wall_s=1.5,
        summary=_summary(),
        store_uri="evalstore",
        mlflow_run_id=None,
        mlflow_error=None,
        message=None,
    )
    scorers = [SimpleNamespace(name=None, type="exact"), SimpleNamespace(name="numeric", type="x")]
    suite = SimpleNamespace(spec=SimpleNamespace(scorers=scorers, group_by=["topic"]))
    print_result(result, suite)
    text = out.export_text()
    assert "run r1: done" in text
    assert "by topic" in text
    assert "20/20" in text
    assert "results: evalstore/runs/run_id=r1" in text


def _live_console() -> Console:
    return Console(file=io.StringIO(), force_terminal=True, width=120, color_system=None)


def _frames(console: Console) -> list[str]:
    """Every frame the bar drew, as plain text."""
    import re

    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())
    return [f.strip() for f in re.split(r"[\r\n]+", text) if f.strip()]


def test_the_bar_says_what_the_run_is_doing_before_there_is_a_count():
    """Ray takes seconds to start: the bar names the phase, and no `0/?` stands in for it."""
    out = _live_console()
    with display.ProgressDisplay(to=out) as bar:
        bar.phase("starting Ray")
        starting = _frames(out)[-1]
        bar.phase("running")
        bar.update({"done": 600, "total": 600, "cost_usd": 0.5, "errors": 0})
        bar.phase("writing MLflow")
        writing = _frames(out)[-1]
    assert starting.startswith("starting Ray")
    assert "/?" not in starting and "0/" not in starting
    # drawn at once, not at the next timed refresh, with the final count
    assert writing.startswith("writing MLflow") and "600/600" in writing


def test_a_phase_with_a_detail_prints_it_with_or_without_a_bar():
    for enabled in (True, False):
        out = _live_console()
        with display.ProgressDisplay(enabled=enabled, to=out) as bar:
            bar.phase("stopping", "Ctrl-C again to force")
        assert "stopping: Ctrl-C again to force" in "\n".join(_frames(out)), enabled


def test_ray_and_mlflow_banners_are_held_back_while_the_bar_is_drawn():
    import logging

    token_banner = logging.getLogger("ray._private.authentication.authentication_token_setup")
    mlflow_tables = logging.getLogger("mlflow.store.db.utils")  # "Creating initial MLflow..."
    with display.ProgressDisplay(to=_live_console()):
        assert not token_banner.isEnabledFor(logging.WARNING)
        assert not mlflow_tables.isEnabledFor(logging.INFO)
        assert mlflow_tables.isEnabledFor(logging.WARNING)
        assert token_banner.isEnabledFor(logging.ERROR)
    assert token_banner.isEnabledFor(logging.WARNING)  # given back after the bar
    with display.ProgressDisplay(enabled=False):  # --quiet: no bar, nothing held back
        assert token_banner.isEnabledFor(logging.WARNING)
