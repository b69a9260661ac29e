"""The app factory of a reloading `chutes run`: each server process loads the chute afresh."""

from __future__ import annotations

import os
import sys
from typing import Any

REF_ENV = "CHUTES_REF"
BANNER_ENV = "CHUTES_RUN_BANNER"


def create_app() -> Any:
    """Loads the chute named by $CHUTES_REF and prints its cords; exits (and waits for an edit) on error."""
    from chutes.exceptions import ChuteLoadError
    from chutes.loader import load_chute
    from chutes_cli.banner import print_banner
    from chutes_cli.errors import print_error

    try:
        chute = load_chute(os.environ[REF_ENV])
    except ChuteLoadError as exc:
        print_error(f"{exc}\n\nWaiting for a change to reload.")
        sys.exit(3)
    host, port, dev = os.environ[BANNER_ENV].split(" ")
    print_banner(chute, host=host, port=int(port), dev=dev == "dev", reload=True)
    return chute
