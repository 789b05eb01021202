"""``python -m swirl_env.fuzz``: see :mod:`swirl_env.fuzz`."""

import sys

from swirl_env.fuzz import main

sys.exit(main())
