"""``python -m avf.cli``: the ``avf`` command without the console script."""

from avf.cli import main

raise SystemExit(main())
