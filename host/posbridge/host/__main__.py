"""``python -m posbridge.host`` runs the ``posbridge`` command."""

from posbridge.host.cli import main

raise SystemExit(main())
