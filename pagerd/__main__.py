"""`python -m pagerd`."""

import sys

from pagerd.cli import main

sys.exit(main())
