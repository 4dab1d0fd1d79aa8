"""Rate limits, circuit breaker, retries and fair sharing: plain asyncio, no Ray, no HTTP.

`EndpointPipeline` composes them for one endpoint: a `WeightedFairQueue` orders the runs'
requests in front of a `DualTokenBucket` and a `SendWindow`, a `CircuitBreaker` guards the
endpoint, and `call_with_retries` retries transient failures with the provider's own delays
honoured. The provider actor wraps the pipeline.
"""

from evalcluster.limits.breaker import BreakerState, CircuitBreaker, counts_as_failure
from evalcluster.limits.bucket import DualTokenBucket, Reservation
from evalcluster.limits.clock import ManualClock
from evalcluster.limits.fair import Turn, WeightedFairQueue
from evalcluster.limits.pipeline import BreakerOpen, EndpointPipeline
from evalcluster.limits.retry import (
    Attempted,
    RetryDecision,
    call_with_retries,
    decide,
    is_retryable,
)
from evalcluster.limits.window import SendWindow

__all__ = [
    "Attempted",
    "BreakerOpen",
    "BreakerState",
    "CircuitBreaker",
    "DualTokenBucket",
    "EndpointPipeline",
    "ManualClock",
    "Reservation",
    "RetryDecision",
    "SendWindow",
    "Turn",
    "WeightedFairQueue",
    "call_with_retries",
    "counts_as_failure",
    "decide",
    "is_retryable",
]
