"""``python -m helpers.dreambooth`` and ``accelerate launch -m helpers.dreambooth``."""

import sys

from helpers.dreambooth.cli import main

sys.exit(main())
