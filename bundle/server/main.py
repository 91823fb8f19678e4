"""Entry point of the SumpPump MCP Bundle: ``sumppump serve`` on stdio.

The host (Claude Desktop) installs the project from the bundle's ``pyproject.toml`` into a
virtual environment and runs this file there, with the form's answers (``user_config``) as
``SUMPPUMP_*`` environment variables. An optional field left blank may arrive as an empty string
or as its unsubstituted ``${user_config.…}`` placeholder; both are dropped here so the setting's
own default applies.
"""

from __future__ import annotations

import os
import sys


def _drop_unanswered_settings() -> None:
    for name in [n for n in os.environ if n.startswith("SUMPPUMP_")]:
        value = os.environ[name].strip()
        if not value or value.startswith("${user_config."):
            del os.environ[name]


if __name__ == "__main__":
    _drop_unanswered_settings()
    from sumppump.cli import main

    sys.exit(main(["serve"]))
