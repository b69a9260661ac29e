"""chutes: serve async Python functions as HTTP endpoints."""

__version__ = "0.1.0"
