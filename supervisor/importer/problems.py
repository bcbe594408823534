"""Where an imported setting came from, and the failure that stops an import."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Where:
    """A line of a file, as the user named the file."""

    file: str
    line: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def label(self) -> str:
        """How a spec comment names it: `uwsgi.ini line 4`."""
        return f"{self.file} line {self.line}"


class ImportFailure(Exception):
    """The import cannot go on; each problem is one `FILE:LINE: message` line."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = list(problems)


def fail(where: Where, message: str) -> ImportFailure:
    return ImportFailure([f"{where}: {message}"])
