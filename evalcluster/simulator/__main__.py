"""``python -m evalcluster.simulator``: see `evalcluster.simulator.cli`."""

from evalcluster.simulator.cli import main

if __name__ == "__main__":  # importing this module must not start (or exit) anything
    raise SystemExit(main())
