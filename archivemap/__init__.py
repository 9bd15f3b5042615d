"""archivemap: typed, lazy, navigable Python objects for NOMAD archives."""

__version__ = "0.1.0"
