"""`python -m jwks_operator`."""

import sys

from .cli import main

sys.exit(main())
