"""`python -m tools.local_host`: the command line of cli.py."""
import sys

from tools.local_host.cli import main

sys.exit(main())
