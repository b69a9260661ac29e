"""How building reports a mistake the user can fix; the CLI prints it as `Error: ...`, the host as the
deploy's failure."""

from __future__ import annotations


class BuildError(Exception):
    """A build problem the user can fix; the message says what is wrong and what to do."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.exit_code = exit_code
