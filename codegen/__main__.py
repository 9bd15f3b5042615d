"""``python -m archivemap_codegen METAINFO -o DIR [--check]``."""

import sys

from .cli import main

sys.exit(main())
