"""What the mapping of one ini works on: its entries by key, the draft, the choices."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from supervisor.importer.draft import Draft
from supervisor.importer.ini import Entry, Ini
from supervisor.importer.problems import Where


@dataclass(frozen=True)
class Choices:
    """What the command line says beyond the ini."""

    name: Optional[str] = None
    socket: Optional[str] = None  # where to listen instead of the ini's socket
    output: Optional[str] = None  # the spec file to write; None: stdout


@dataclass
class Context:
    ini: Ini
    choices: Choices
    known: Optional[frozenset[str]]  # uWSGI's options, None if it could not be asked
    cwd: str  # where the import runs: uWSGI's directory, as far as an import can tell
    draft: Draft = field(default_factory=Draft)
    used: set[str] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)  # FILE:LINE: ... that stop the import
    base: str = ""  # relative paths in the ini resolve here (uWSGI's directory)
    owned: list[tuple[Where, str]] = field(default_factory=list)
    dropped: list[tuple[Where, str]] = field(default_factory=list)

    def take(self, *keys: str) -> list[Entry]:
        """The entries of these keys, in file order; they count as handled."""
        self.used.update(keys)
        return [e for e in self.ini.entries if e.key in keys and not e.placeholder]

    def last(self, *keys: str) -> Optional[Entry]:
        """The entry uWSGI used for a single-valued option (the last), noting repeats."""
        entries = self.take(*keys)
        if len(entries) > 1:
            places = ", ".join(str(e.where) for e in entries)
            self.draft.warnings.append(
                f"{entries[-1].where}: {entries[-1].key} is given {len(entries)} times"
                f" ({places}); uWSGI used the last: {entries[-1].value}"
            )
        return entries[-1] if entries else None

    def path(self, value: str) -> str:
        """An ini path as uWSGI opened it: relative ones against its directory."""
        return os.path.normpath(os.path.join(self.base, value))

    def drop(self, entry: Entry, why: str) -> None:
        """Not carried over: listed in the spec and on stderr, never silently."""
        self.dropped.append((entry.where, f"{entry.where.label}: {entry.text}: {why}"))

    def own(self, entry: Entry, why: str) -> None:
        """Now the supervisor's business: said in the spec."""
        self.owned.append((entry.where, f"{entry.where.label}: {entry.text}: {why}"))

    def settle(self) -> None:
        """Move what was dropped and owned into the draft, in the ini's order."""

        def order(item: tuple[Where, str]) -> tuple[int, int]:
            where = item[0]
            files = self.ini.files
            return (files.index(where.file) if where.file in files else len(files), where.line)

        self.draft.owned[:0] = [text for _, text in sorted(self.owned, key=order)]
        self.draft.dropped[:0] = [text for _, text in sorted(self.dropped, key=order)]
        self.owned, self.dropped = [], []

    def fail(self, entry: Entry, why: str) -> None:
        self.problems.append(f"{entry.where}: {entry.text}: {why}")


def source(entry: Entry) -> str:
    """A spec comment naming where a value came from."""
    return f"from {entry.where.label}: {entry.text}"
