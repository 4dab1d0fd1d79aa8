"""``python -m evalcluster.simulator``: see `evalcluster.simulator.cli`."""

from evalcluster.simulator.cli import main

raise SystemExit(main())
