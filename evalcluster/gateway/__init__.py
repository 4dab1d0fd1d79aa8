"""The OpenAI-compatible gateway: any OpenAI client reaches the operator's providers through
their provider actors (cluster-wide limits, breaker, retries, fallback), under the tenant's
budget and rate share, with every call logged as a row in the lake.

Modules: `config` (routes, validated with the service configuration), `wire` (OpenAI chat
bodies to and from `CompletionRequest` / `Completion`), `anthropic_wire` (Anthropic Messages
bodies to and from the same), `errors` (OpenAI-shaped errors and the
status each failure kind gets), `calls` (the call through a provider actor), `ledger` (spend
per tenant and model), `rows` (the call log in the lake), `cache` (opt-in answers cache).
"""
