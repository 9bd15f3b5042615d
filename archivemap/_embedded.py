"""Where the NOMAD metainfo export shipped with the package lives.

A leaf, so that both readers of the export can find it: the schema layer
(:mod:`archivemap.metainfo.default`, which reads archives with it when no schema is given)
and the bundled server (:mod:`archivemap.server`, which answers ``required`` with NOMAD's
schema rules and may depend on the leaves only).
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

__all__ = ["EMBEDDED_METAINFO", "NOMAD_VERSION"]

#: The NOMAD release whose metainfo is embedded.
NOMAD_VERSION: Final = "2.0.0"
#: The embedded export (``nomad dev metainfo`` of that release with its plugins), gzip-compressed.
EMBEDDED_METAINFO: Final = Path(__file__).with_name("_data") / f"nomad-{NOMAD_VERSION}-metainfo.json.gz"
