"""`python -m jwks_operator`."""

import sys

from jwks_operator.app.cli import main

sys.exit(main())
