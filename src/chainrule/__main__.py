"""``python -m chainrule`` runs the command line (level 7)."""

import sys

from chainrule.cli import main

sys.exit(main())
