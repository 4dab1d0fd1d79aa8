"""The Ray namespace of every named actor evalcluster makes (provider endpoints, the live-run
registry, the gateway's ledger, the HTTP service's run drivers), and of the drivers it starts.

Its own module so that every layer that names an actor imports it from one place below them
all; it imports nothing.
"""

from __future__ import annotations

NAMESPACE = "evalcluster"
