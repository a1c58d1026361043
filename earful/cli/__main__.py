"""``python -m earful.cli``."""

import sys

from earful.cli import main

sys.exit(main())
