"""Entry point for `python3 -m lvsagent` and the installed `lvs-agent` command."""

from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
