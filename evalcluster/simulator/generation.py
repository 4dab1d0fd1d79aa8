"""Turn a parsed request into the model's output: answer, stop sequences, max_tokens, cost."""

from __future__ import annotations

from evalcluster.simulator.config import SimulatorConfig
from evalcluster.simulator.formats.base import SimRequest, SimResult
from evalcluster.simulator.model import answer
from evalcluster.simulator.tokens import count_tokens, truncate_tokens


def generate(request: SimRequest, config: SimulatorConfig, thinking_tokens: int = 0) -> SimResult:
    """The output for `request`: the model's answer cut at the earliest stop sequence, then
    at `max_tokens` (finish "length"). Cost is set only when the request asked for it."""
    text = answer(
        request.prompt,
        model=request.model,
        seed=config.seed,
        accuracy=config.accuracy,
        reference=request.reference,
        difficulty=config.difficulty(),
    )
    finish = "stop"
    stop_sequence = None
    cuts = [(text.find(s), s) for s in request.stop if s in text]
    if cuts:
        index, stop_sequence = min(cuts)
        text, finish = text[:index], "stop_sequence"
    output_tokens = count_tokens(text)
    if request.max_tokens is not None and output_tokens > request.max_tokens:
        text, finish, stop_sequence = truncate_tokens(text, request.max_tokens), "length", None
        output_tokens = request.max_tokens
    return SimResult(
        text=text,
        finish=finish,
        input_tokens=request.input_tokens,
        output_tokens=output_tokens,
        stop_sequence=stop_sequence,
        thinking_tokens=thinking_tokens,
        cost_usd=cost_usd(request.input_tokens, output_tokens, config)
        if request.include_cost
        else None,
    )


def cost_usd(input_tokens: int, output_tokens: int, config: SimulatorConfig) -> float:
    """OpenRouter-style usage.cost in USD at the configured per-million-token prices."""
    cost = input_tokens * config.price_input_per_mtok + output_tokens * config.price_output_per_mtok
    return round(cost / 1_000_000, 12)


def token_charge(request: SimRequest, result: SimResult) -> int:
    """Tokens a request costs against tpm: input plus max_tokens requested, or plus the actual
    output when no maximum was given (providers reserve max_tokens before generating)."""
    reserved = request.max_tokens if request.max_tokens is not None else result.output_tokens
    return request.input_tokens + reserved
