"""Entry point for `python3 -m lvsagent` and the installed `lvs-agent` command."""

import sys

from .cli import main

sys.exit(main())
