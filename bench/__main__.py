"""``python -m bench``: run the benchmarks and print the table."""

from __future__ import annotations

import sys

from bench.run import main

sys.exit(main())
