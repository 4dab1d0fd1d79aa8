"""Rate limits, circuit breaker, retries and fair sharing: plain asyncio, no Ray, no HTTP.

The endpoint actor composes them: a `WeightedFairQueue` orders the runs' requests in front of a
`DualTokenBucket`, a `CircuitBreaker` guards the endpoint, and `call_with_retries` retries
transient failures with the provider's own delays honoured.
"""

from evalcluster.limits.breaker import BreakerState, CircuitBreaker, counts_as_failure
from evalcluster.limits.bucket import DualTokenBucket, Reservation
from evalcluster.limits.clock import ManualClock
from evalcluster.limits.fair import Turn, WeightedFairQueue
from evalcluster.limits.retry import (
    Attempted,
    RetryDecision,
    call_with_retries,
    decide,
    is_retryable,
)

__all__ = [
    "Attempted",
    "BreakerState",
    "CircuitBreaker",
    "DualTokenBucket",
    "ManualClock",
    "Reservation",
    "RetryDecision",
    "Turn",
    "WeightedFairQueue",
    "call_with_retries",
    "counts_as_failure",
    "decide",
    "is_retryable",
]
