"""`python -m tlhelpers` runs the command line."""

import sys

from tlhelpers.cli import main

sys.exit(main())
