"""``python -m pakati_core.client``: the command line (guarded, so importing the module runs nothing)."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
