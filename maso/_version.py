"""The version of maso (a leaf module: the checkpoint header records it, below the top level)."""

__version__ = "0.3.0"
