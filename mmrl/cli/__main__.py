"""``python -m mmrl.cli``."""

import sys

from mmrl.cli import main

sys.exit(main())
