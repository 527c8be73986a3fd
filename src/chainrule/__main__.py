"""``python -m chainrule`` runs the command line (level 9)."""

import sys

from chainrule.cli import main

sys.exit(main())
