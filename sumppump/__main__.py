from __future__ import annotations

import sys

from sumppump.cli import main

sys.exit(main())
