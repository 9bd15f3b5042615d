"""``python -m archivemap.cli COMMAND …``: the command line without the installed script."""

import sys

from archivemap.cli import main

sys.exit(main())
