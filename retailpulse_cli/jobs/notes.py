"""How a use case tells the user something while it works, without printing: the front
end passes a `Notes` (the CLI's writes lines on stderr; a test's can collect them)."""

from __future__ import annotations

from typing import Protocol


class Notes(Protocol):
    def info(self, message: str) -> None:
        """Something worth a line: a file skipped, a default used instead."""

    def error(self, message: str) -> None:
        """A problem with one item that does not stop the others."""
