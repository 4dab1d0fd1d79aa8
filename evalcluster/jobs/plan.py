"""`evalcluster plan` and `POST /v1/plan`: how many questions a comparison needs, and its price.

`plan_suite` answers for the pair of targets a and b of a loaded suite (the suite's `compare:`
pair, else its first two targets) on one scorer:

- the inputs: accuracies, their correlation, the intra-cluster correlation and cluster size, the
  within-question variance, taken from an earlier run's rows (`from_run`) or assumed (`p_a`,
  `p_b`, `correlation`, `icc`, `cluster_size`, `within_share`); a value given explicitly wins
  over the run's;
- the fixed design: questions needed to detect `delta` (default: the run's observed difference,
  else p_b - p_a) at `alpha` and `power`, paired, with the clusters' design effect and the
  epochs; the minimum detectable difference and the power at `n` when `n` is given;
- its projected cost (the suite's prices over the run's mean tokens per call, else tokens
  estimated from the prompts and `max_tokens`) and time (each provider's rpm/tpm);
- the sequential design (`evalcluster.scoring.sequential`), by a quick seeded Monte Carlo of
  binary pairs with the same accuracies and correlation: its expected and median questions.

The maths is in `evalcluster.scoring.planning`; nothing here imports Ray or MLflow.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
from collections import defaultdict
from collections.abc import Hashable
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from evalcluster.errors import SpecError
from evalcluster.rows import score_column
from evalcluster.store.layout import DEFAULT_STORE

if TYPE_CHECKING:
    from evalcluster.store.fs import Store
    from evalcluster.suite.loader import LoadedSuite

PROMPT_SAMPLE_ROWS = 200  # dataset rows whose prompts estimate the input tokens
SEQUENTIAL_REPLICATES = 200
SEQUENTIAL_DRAWS = 20_000_000  # simulated pairs at most: a plan answers in seconds
SEQUENTIAL_MAX_CAP = 1_000_000
MAX_LOOKS = 400
TUNE_FRACTION = 10  # as jobs/sequential_compare.py: tightest at a tenth of the cap


class PlanRequest(BaseModel):
    """The planning parameters, from the command line or an HTTP body."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    delta: float | None = Field(
        None, ge=-1, le=1, description="True difference b - a to detect (|delta| >= 1e-6)."
    )
    n: int | None = Field(None, ge=2, le=10**9, description="Questions: detectable difference.")
    alpha: float = Field(0.05, gt=0, lt=1, description="Two-sided level of the test.")
    power: float = Field(0.8, gt=0, lt=1, description="Wanted power against delta.")
    a: str | None = Field(None, description="Baseline target; default compare.a or the first.")
    b: str | None = Field(None, description="Compared target; default compare.b or the second.")
    scorer: str | None = Field(None, description="Scorer; default compare.scorer or the first.")
    from_run: str | None = Field(None, max_length=128, description="A run to estimate from.")
    p_a: float | None = Field(None, ge=0, le=1, description="Assumed accuracy of a.")
    p_b: float | None = Field(None, ge=0, le=1, description="Assumed accuracy of b.")
    correlation: float | None = Field(None, ge=-1, le=1, description="Of a's and b's scores.")
    icc: float | None = Field(None, ge=0, le=1, description="Intra-cluster correlation of b - a.")
    cluster_size: float | None = Field(
        None, ge=1, le=1_000_000, description="Questions per cluster."
    )
    within_share: float | None = Field(
        None, ge=0, le=1, description="Share of score variance that is resampling noise."
    )
    epochs: int | None = Field(None, ge=1, le=1000, description="Default: the suite's epochs.")
    sequential: bool = Field(True, description="Simulate the sequential design's sample size.")

    @model_validator(mode="after")
    def _check(self) -> PlanRequest:
        if self.delta is not None and abs(self.delta) < 1e-6:
            raise ValueError("delta must be at least 1e-6 away from 0")
        if self.from_run is None and (self.p_a is None or self.p_b is None):
            raise ValueError("give from_run, or both p_a and p_b (assumed accuracies)")
        if self.from_run is None and self.delta is None and self.n is None and self.p_a == self.p_b:
            raise ValueError("p_a equals p_b: give delta (the difference to detect) or n")
        return self


def plan_suite(
    suite: LoadedSuite, request: PlanRequest, *, store: Store | None = None
) -> dict[str, Any]:
    """The plan (see the module docstring) as a JSON-ready dict. Raises SpecError for a target,
    scorer or run the request names that does not fit the suite."""
    from evalcluster.scoring.planning import (
        Design,
        detectable_difference,
        diff_sd,
        power_at,
        samples_needed,
    )

    a, b, scorer = _pair(suite, request)
    notes: list[str] = []
    pilot = usage = None
    if request.from_run is not None:
        if store is None:
            raise SpecError("from_run needs a store", field="from_run")
        pilot, usage = _pilot(store, request.from_run, suite, a, b, scorer, notes)
    p_a = request.p_a if request.p_a is not None else pilot.p_a  # type: ignore[union-attr]
    p_b = request.p_b if request.p_b is not None else pilot.p_b  # type: ignore[union-attr]
    correlation = request.correlation
    if correlation is None and pilot is not None:
        correlation = pilot.correlation
    if correlation is None:
        correlation = 0.0
        notes.append("correlation unknown: assumed 0 (unpaired variance; the plan is cautious)")
    explicit_sd = pilot is None or any(
        v is not None for v in (request.p_a, request.p_b, request.correlation)
    )
    sd = diff_sd(p_a, p_b, correlation) if explicit_sd else pilot.sd_diff  # type: ignore[union-attr]
    epochs = request.epochs or suite.spec.epochs
    var_within, pilot_epochs = 0.0, 1
    if request.within_share is not None:
        var_within = request.within_share * (p_a * (1 - p_a) + p_b * (1 - p_b))
    elif pilot is not None and not explicit_sd:
        var_within, pilot_epochs = pilot.var_within, pilot.epochs
    if epochs > 1 and var_within == 0.0:
        notes.append("no within-question variance known: epochs assumed to add no precision")
    icc = request.icc if request.icc is not None else (pilot.icc if pilot else 0.0)
    size = request.cluster_size or (pilot.cluster_size if pilot else 1.0)
    try:
        design = Design(
            sd_diff=sd,
            alpha=request.alpha,
            power=request.power,
            epochs=epochs,
            var_within=var_within,
            pilot_epochs=pilot_epochs,
            icc=icc,
            cluster_size=size,
        )
    except ValueError as exc:
        raise SpecError(str(exc), field="plan") from None
    delta = request.delta
    if delta is None:  # the difference assumed or seen, when there is one
        delta = (pilot.diff if pilot is not None and not explicit_sd else p_b - p_a) or None
        if delta is None and request.n is None:
            raise SpecError("the run shows no difference: give delta or n", field="delta")
    out: dict[str, Any] = {
        "suite": suite.spec.name,
        "suite_version": suite.version,
        "a": a,
        "b": b,
        "scorer": scorer,
        "source": f"run {request.from_run}" if request.from_run else "assumed",
        "alpha": request.alpha,
        "power": request.power,
        "epochs": epochs,
        "inputs": {
            "p_a": p_a,
            "p_b": p_b,
            "correlation": correlation,
            "sd_diff": design.variance**0.5,
            "var_within": var_within,
            "icc": icc,
            "cluster_size": size,
            "design_effect": design.design_effect,
        },
        "pilot": pilot.to_dict() if pilot is not None else None,
        "dataset_samples": _dataset_size(suite),
    }
    try:
        if delta is not None:
            out["delta"] = delta
            out["samples_needed"] = samples_needed(design, delta)
            unpaired = Design(diff_sd(p_a, p_b, 0.0), alpha=request.alpha, power=request.power)
            out["samples_needed_unpaired_iid"] = samples_needed(unpaired, delta)
        if request.n is not None:
            out["n"] = request.n
            out["detectable_difference"] = detectable_difference(design, request.n)
            if delta is not None:
                out["power_at_n"] = power_at(design, request.n, delta)
    except (ValueError, ArithmeticError) as exc:
        raise SpecError(str(exc), field="plan") from None
    planned = request.n if request.n is not None else out["samples_needed"]
    if out["dataset_samples"] is not None and planned > out["dataset_samples"]:
        notes.append(f"the dataset has {out['dataset_samples']} samples, fewer than {planned}")
    out["fixed"] = _projection(suite, planned, epochs, usage, notes)
    out["sequential"] = None
    if request.sequential and delta is not None:
        out["sequential"] = _sequential(suite, request, p_a, p_b, correlation, delta, planned)
        if out["sequential"] is None:
            notes.append("sequential design not simulated (its cap is above 1,000,000 samples)")
    out["notes"] = notes
    return out


def _pair(suite: LoadedSuite, request: PlanRequest) -> tuple[str, str, str]:
    compare = getattr(suite.spec, "compare", None)
    names = [t.name for t in suite.spec.targets]
    a = request.a or (compare.a if compare else (names[0] if names else None))
    b = request.b or (compare.b if compare else (names[1] if len(names) > 1 else None))
    for field, name in (("a", a), ("b", b)):
        if name is None:
            raise SpecError("the suite has one target: a plan compares two", field="targets")
        if name not in names:
            raise SpecError(f"unknown target {name!r} (targets: {', '.join(names)})", field=field)
    if a == b:
        raise SpecError("a and b must be different targets", field="b")
    scorers = [s.column_name for s in suite.spec.scorers]
    scorer = request.scorer or (getattr(compare, "scorer", None) if compare else None) or scorers[0]
    if scorer not in scorers:
        raise SpecError(
            f"unknown scorer {scorer!r} (scorers: {', '.join(scorers)})", field="scorer"
        )
    return a, b, scorer  # type: ignore[return-value]


def _pilot(
    store: Store,
    run_id: str,
    suite: LoadedSuite,
    a: str,
    b: str,
    scorer: str,
    notes: list[str],
) -> tuple[Any, dict[str, dict[str, float]]]:
    from evalcluster.errors import NotFoundError, StoreError
    from evalcluster.scoring.planning import estimate_pilot
    from evalcluster.store.lake import read_results

    column = score_column(scorer)
    wanted = ["sample_id", "error_kind", "metadata", "input_tokens", "output_tokens"]
    scores: dict[str, dict[Hashable, list[float]]] = {}
    clusters: dict[Hashable, Hashable | None] = {}
    usage: dict[str, dict[str, float]] = {}
    cluster = suite.spec.cluster
    for target in (a, b):
        try:
            rows = read_results(
                store, run_id, target=target, columns=[*wanted, "latency_ms", column]
            ).to_pylist()
        except NotFoundError:
            raise SpecError(f"no run {run_id!r}", field="from_run") from None
        except StoreError:  # its message may name the store's location: not repeated
            raise SpecError(
                f"cannot read the rows of run {run_id!r} (has it a scorer {scorer!r}?)",
                field="from_run",
            ) from None
        if not rows:
            raise SpecError(f"run {run_id!r} has no rows of target {target!r}", field="from_run")
        per_sample: dict[Hashable, list[float]] = defaultdict(list)
        ok = [r for r in rows if not r["error_kind"]]
        for r in ok:
            if r[column] is not None:
                per_sample[r["sample_id"]].append(float(r[column]))
            if cluster and r["sample_id"] not in clusters:
                value = json.loads(r["metadata"] or "{}").get(cluster)
                clusters[r["sample_id"]] = None if value is None else str(value)
        scores[target] = per_sample
        latencies = [float(r["latency_ms"]) for r in ok if r["latency_ms"] is not None]
        usage[target] = {
            "input_tokens": statistics.fmean(r["input_tokens"] for r in ok) if ok else 0.0,
            "output_tokens": statistics.fmean(r["output_tokens"] for r in ok) if ok else 0.0,
            "latency_ms_p50": statistics.median(latencies) if latencies else 0.0,
        }
    if cluster and not any(v is not None for v in clusters.values()):
        notes.append(f"the run's rows carry no {cluster!r} values: icc assumed 0")
    try:
        pilot = estimate_pilot(scores[a], scores[b], clusters=clusters if cluster else None)
    except ValueError as exc:
        raise SpecError(f"run {run_id!r}: {exc}", field="from_run") from None
    return pilot, usage


def _dataset_size(suite: LoadedSuite) -> int | None:
    from evalcluster.jobs.samples import count_samples

    try:
        return count_samples(suite)
    except Exception:  # a plan without the dataset's size is still a plan
        return None


def _projection(
    suite: LoadedSuite,
    n: int,
    epochs: int,
    usage: dict[str, dict[str, float]] | None,
    notes: list[str],
) -> dict[str, Any]:
    """Cost and time of running every target of the suite on `n` samples x `epochs`."""
    from evalcluster.providers.pricing import output_allowance, price_for

    prompt_tokens = _prompt_tokens(suite)
    calls = n * epochs
    by_target: dict[str, Any] = {}
    per_provider: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    total: float | None = 0.0
    for target in suite.spec.targets:
        seen = (usage or {}).get(target.name)
        if seen is not None:
            tokens_in, tokens_out, basis = seen["input_tokens"], seen["output_tokens"], "run"
        else:
            tokens_in = prompt_tokens
            tokens_out = float(output_allowance(target.params.max_tokens))
            basis = "estimate (prompt length; max_tokens as output)"
        provider = suite.spec.providers.get(target.provider)
        price_in = price_out = None
        if provider is not None and provider.pricing is not None:
            price_in, price_out = provider.pricing.input_per_mtok, provider.pricing.output_per_mtok
        elif (table := price_for(target.model)) is not None:
            price_in, price_out = table.input, table.output
        cost = None
        if price_in is not None and price_out is not None:
            cost = calls * (tokens_in * price_in + tokens_out * price_out) / 1e6
        total = None if cost is None or total is None else total + cost
        by_target[target.name] = {
            "calls": calls,
            "input_tokens_per_call": tokens_in,
            "output_tokens_per_call": tokens_out,
            "cost_usd": cost,
            "basis": basis,
        }
        load = per_provider[target.provider]
        load["calls"] += calls
        load["tokens"] += calls * (tokens_in + tokens_out)
        load["busy_ms"] += calls * (seen or {}).get("latency_ms_p50", 0.0)
    if total is None:
        notes.append("no price for some target: total cost unknown")
    minutes = _minutes(suite, per_provider, notes)
    return {
        "samples": n,
        "calls": calls * len(suite.spec.targets),
        "cost_usd": total,
        "minutes": minutes,
        "by_target": by_target,
    }


def _minutes(
    suite: LoadedSuite, per_provider: dict[str, dict[str, float]], notes: list[str]
) -> float | None:
    """Each provider's time at its rpm/tpm (else its concurrency over the run's latency); the
    providers run side by side, so the slowest one sets the time."""
    slowest: float | None = 0.0
    for name, load in per_provider.items():
        provider = suite.spec.providers.get(name)
        limits = []
        if provider is not None and provider.rpm:
            limits.append(load["calls"] / provider.rpm)
        if provider is not None and provider.tpm:
            limits.append(load["tokens"] / provider.tpm)
        if not limits and provider is not None and load["busy_ms"] > 0:
            limits.append(load["busy_ms"] / provider.max_concurrency / 60_000.0)
        if not limits:
            notes.append(f"provider {name!r} has no rpm/tpm: time unknown")
            slowest = None
        elif slowest is not None:
            slowest = max(slowest, max(limits))
    return slowest


def _prompt_tokens(suite: LoadedSuite) -> float:
    from evalcluster.jobs.samples import iter_sample_batches, render_prompt
    from evalcluster.providers.pricing import estimate_tokens

    counts: list[int] = []
    try:
        for batch in iter_sample_batches(suite, max_samples=PROMPT_SAMPLE_ROWS):
            for sample in batch.samples:
                text = render_prompt(suite.spec.prompt, sample.fields)
                if suite.spec.system:
                    text += render_prompt(suite.spec.system, sample.fields)
                counts.append(estimate_tokens(text))
    except Exception:  # an unreadable dataset: fall back to the template's own length
        counts = [estimate_tokens(suite.spec.prompt)]
    return statistics.fmean(counts) if counts else 0.0


def _sequential(
    suite: LoadedSuite,
    request: PlanRequest,
    p_a: float,
    p_b: float,
    correlation: float,
    delta: float,
    fixed: int,
) -> dict[str, Any] | None:
    """Questions the sequential comparison uses at a true difference `delta`, by simulating
    `SEQUENTIAL_REPLICATES` seeded evaluations of binary pairs with accuracies around
    (p_a, p_b) and `correlation`, a look after every shard. Clusters are not simulated."""
    try:
        from evalcluster.scoring.sequential import ConfidenceSequence
    except ImportError:
        return None
    import numpy as np

    compare = getattr(suite.spec, "compare", None)
    margin = float(getattr(compare, "margin", 0.0) or 0.0)
    cap = int(getattr(compare, "max_samples", 0) or 2 * fixed)
    cap = max(2, cap)
    if cap > SEQUENTIAL_MAX_CAP:
        return None
    # A look after every shard, but at most MAX_LOOKS looks: tiny shards look more often than
    # simulated, so the figures are then a little pessimistic.
    shard = max(suite.spec.shard_size, math.ceil(cap / MAX_LOOKS))
    replicates = max(50, min(SEQUENTIAL_REPLICATES, SEQUENTIAL_DRAWS // cap))
    centre = (p_a + p_b) / 2.0
    pa = min(1.0, max(0.0, centre - delta / 2.0))
    pb = min(1.0, max(0.0, centre + delta / 2.0))
    joint = pa * pb + correlation * math.sqrt(pa * (1 - pa) * pb * (1 - pb))
    joint = min(pa, pb, max(0.0, pa + pb - 1.0, joint))
    cells = np.array([joint, pa - joint, pb - joint, 1.0 - pa - pb + joint])  # 11, 10, 01, 00
    cells = np.clip(cells, 0.0, None) / np.clip(cells, 0.0, None).sum()
    diffs = np.array([0.0, -1.0, 1.0, 0.0])
    rng = np.random.default_rng(suite.spec.seed)
    used: list[int] = []
    right = 0
    want = "b_better" if delta > 0 else "a_better"
    for _ in range(replicates):
        seq = ConfidenceSequence(
            alpha=request.alpha, margin=margin, tune_samples=max(1, cap // TUNE_FRACTION)
        )
        seen = 0
        while seen < cap and not seq.decided:
            size = min(shard, cap - seen)
            seq.update(diffs[rng.choice(4, size=size, p=cells)])
            seen += size
        used.append(seen)
        right += seq.verdict == want
    return {
        "max_samples": cap,
        "margin": margin,
        "replicates": replicates,
        "look_every": shard,
        "mean_samples": statistics.fmean(used),
        "median_samples": statistics.median(used),
        "decided_correctly": right / replicates,
        "mean_share_of_fixed": statistics.fmean(used) / fixed,
    }


Format = Literal["table", "json"]


def request_from_args(args: argparse.Namespace) -> PlanRequest:
    """The `PlanRequest` of the command line's options."""
    fields = {name: getattr(args, name, None) for name in PlanRequest.model_fields}
    fields["sequential"] = not getattr(args, "no_sequential", False)
    return PlanRequest.model_validate({k: v for k, v in fields.items() if v is not None})


def add_plan_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `evalcluster plan`."""
    p.add_argument("suite", help="the suite file")
    p.add_argument("--from-run", dest="from_run", help="estimate the inputs from this run's rows")
    p.add_argument("--store", default=DEFAULT_STORE, help="results store of --from-run")
    p.add_argument("--endpoint-url", help="S3 endpoint (MinIO etc.); default $AWS_ENDPOINT_URL")
    p.add_argument("--delta", type=float, help="true difference b - a to detect")
    p.add_argument("--n", type=int, help="questions: report the detectable difference")
    p.add_argument("--alpha", type=float, help="two-sided level (default 0.05)")
    p.add_argument("--power", type=float, help="wanted power (default 0.8)")
    p.add_argument("--a", help="baseline target (default compare.a, else the first)")
    p.add_argument("--b", help="compared target (default compare.b, else the second)")
    p.add_argument("--scorer", help="scorer (default the first)")
    p.add_argument("--p-a", dest="p_a", type=float, help="assumed accuracy of a")
    p.add_argument("--p-b", dest="p_b", type=float, help="assumed accuracy of b")
    p.add_argument("--correlation", type=float, help="assumed correlation of a's and b's scores")
    p.add_argument("--icc", type=float, help="assumed intra-cluster correlation of b - a")
    p.add_argument("--cluster-size", dest="cluster_size", type=float, help="questions/cluster")
    p.add_argument(
        "--within-share",
        dest="within_share",
        type=float,
        help="share of score variance that is resampling noise (epochs divide it)",
    )
    p.add_argument("--epochs", type=int, help="epochs (default the suite's)")
    p.add_argument("--no-sequential", action="store_true", help="skip the sequential simulation")
    p.add_argument("--format", choices=["table", "json"], default="table", help="output format")


def cmd_plan(args: argparse.Namespace) -> int:
    """`evalcluster plan`: print the plan. Bad options raise SpecError (exit 2)."""
    from pydantic import ValidationError

    from evalcluster.suite.loader import load_suite

    try:
        request = request_from_args(args)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"]) or "plan"
        raise SpecError(error["msg"].removeprefix("Value error, "), field=field) from None
    suite = load_suite(args.suite)
    store = None
    if request.from_run is not None:
        from evalcluster.store.fs import open_store

        store = open_store(args.store, endpoint_url=args.endpoint_url)
    plan = plan_suite(suite, request, store=store)
    if args.format == "json":
        print(json.dumps(plan, indent=2))
    else:
        print(format_plan(plan))
    return 0


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as a few lines of text."""
    i = plan["inputs"]
    lines = [
        f"plan: {plan['b']} - {plan['a']} on {plan['scorer']} ({plan['source']}), "
        f"alpha {plan['alpha']}, power {plan['power']}, epochs {plan['epochs']}",
        f"  accuracies {i['p_a']:.4f} / {i['p_b']:.4f}, correlation {i['correlation']:.3f}, "
        f"sd of difference {i['sd_diff']:.4f}, icc {i['icc']:.3f} x cluster size "
        f"{i['cluster_size']:.1f} (design effect {i['design_effect']:.2f})",
    ]
    if "samples_needed" in plan:
        lines.append(
            f"  to detect {plan['delta']:+.4f}: {plan['samples_needed']} samples paired "
            f"({plan['samples_needed_unpaired_iid']} unpaired, independent)"
        )
    if "detectable_difference" in plan:
        line = f"  at n = {plan['n']}: detectable difference {plan['detectable_difference']:.4f}"
        if "power_at_n" in plan:
            line += f", power {plan['power_at_n']:.3f} against {plan['delta']:+.4f}"
        lines.append(line)
    fixed = plan["fixed"]
    cost = "unknown" if fixed["cost_usd"] is None else f"${fixed['cost_usd']:.2f}"
    minutes = "unknown" if fixed["minutes"] is None else f"{fixed['minutes']:.1f} min"
    lines.append(
        f"  fixed design: {fixed['samples']} samples, {fixed['calls']} calls, {cost}, {minutes}"
    )
    seq = plan.get("sequential")
    if seq:
        lines.append(
            f"  sequential (simulated, cap {seq['max_samples']}): mean {seq['mean_samples']:.0f}, "
            f"median {seq['median_samples']:.0f} samples "
            f"({seq['mean_share_of_fixed']:.0%} of fixed), correct verdict "
            f"{seq['decided_correctly']:.0%}"
        )
    lines.extend(f"  note: {note}" for note in plan["notes"])
    return "\n".join(lines)
