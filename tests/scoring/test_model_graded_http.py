"""The model_graded scorer against the project's simulator acting as judge, over real HTTP."""

from collections.abc import Iterator

import httpx
import pytest

from evalcluster.scoring import ModelGradedScorer
from evalcluster.simulator.runner import SimulatorThread

from .conftest import build_one


@pytest.fixture(scope="module")
def judge_url() -> Iterator[str]:
    with SimulatorThread() as sim:
        yield sim.url


def ask_judge(url: str, scorer: ModelGradedScorer, prompt: str, output: str, ref: str) -> str:
    messages = scorer.judge_messages(prompt, output, ref)
    response = httpx.post(
        f"{url}/v1/chat/completions",
        json={
            "model": "sim-judge",
            "messages": [{"role": m.role, "content": m.content} for m in messages],
        },
        headers={"Authorization": "Bearer test-key"},
        timeout=10,
    )
    response.raise_for_status()
    return response.json()["choices"][0]["message"]["content"]


@pytest.mark.parametrize(
    ("output", "reference", "expected"),
    [
        ("It is 4.", "4", 1.0),
        ("The sum is 1,234", "1234", 1.0),
        ("5", "4", 0.0),
        ("Paris!", "paris", 1.0),
        ("Lyon", "Paris", 0.0),
    ],
)
def test_default_template_is_graded_by_the_simulator_judge(
    judge_url: str, output: str, reference: str, expected: float
) -> None:
    scorer = build_one("model_graded", judge="sim-judge")
    verdict = ask_judge(judge_url, scorer, "Question?", output, reference)
    score = scorer.parse_verdict(verdict)
    assert score.value == expected
    assert score.explanation == verdict
