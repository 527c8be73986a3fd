"""``python -m chainrule`` runs the command line (level 10)."""

import sys

from chainrule.cli import main

sys.exit(main())
