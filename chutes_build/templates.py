"""Where the Jinja2 templates live: templates/ in a checkout, share/chutes/templates in a wheel install."""

from __future__ import annotations

import sys
from pathlib import Path


def templates_dir() -> Path:
    """Returns the templates directory of this installation."""
    checkout = Path(__file__).resolve().parents[1] / "templates"
    if checkout.is_dir():
        return checkout
    return Path(sys.prefix) / "share" / "chutes" / "templates"
