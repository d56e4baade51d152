"""`python -m ehrkit.docs [--check]`."""

import sys

from ehrkit.docs import main

sys.exit(main())
