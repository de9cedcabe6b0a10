"""``python -m kcovdf``: the same as the ``kcovdf`` command."""

import sys

from kcovdf.cli import main

sys.exit(main())
