"""uWSGI's magic variables (`%d`, `%n`, ...), substituted in a config file's text.

As uWSGI 2.0 does (core/uwsgi.c config_magic_table_fill, core/utils.c
magic_sub): every `%` followed by a character is replaced, by that
variable's value, or by nothing when the character names none; `%%` is a
`%` and `%(` is kept for the `%(option)` pass. The upper-case letters keep
the values of the first file read, for its includes.
"""

from __future__ import annotations

import grp
import os
import pwd
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional

# Values that depend on the moment or on who runs uWSGI: substituted with
# the import's own, and said so, since uWSGI may have seen others.
_DYNAMIC = {
    "v": "uWSGI's working directory (here: where the import runs)",
    "h": "the host name (here: this host's)",
    "k": "the number of CPUs (here: this host's)",
    "u": "the uid uWSGI ran as (here: the import's)",
    "U": "the user uWSGI ran as (here: the import's)",
    "g": "the gid uWSGI ran as (here: the import's)",
    "G": "the group uWSGI ran as (here: the import's)",
}
# Values no import can know: uWSGI's start time, version and binary.
_UNKNOWABLE = {
    "t": "the time uWSGI started",
    "T": "the time uWSGI started (microseconds)",
    "V": "uWSGI's version",
    "b": "the uWSGI binary's path",
}
_FILE_VARS = "opsdcenxij0123456789"


def _djb33x(text: str) -> str:
    """uWSGI's %j: the djb33x hash of the file's path, as 8 hex digits of its bytes."""
    value = 5381
    for byte in os.fsencode(text):
        value = (((value << 5) + value) ^ byte) & 0xFFFFFFFF
    return value.to_bytes(4, "little").hex()


def file_vars(given: str, section: Optional[str], cwd: str) -> dict[str, str]:
    """The per-file variables for a config file named `given` (as uWSGI was told)."""
    path = given if os.path.isabs(given) else os.path.join(cwd, given)
    full = os.path.normpath(path) if os.path.islink(path) else os.path.realpath(path)
    base = os.path.basename(full)
    directory = os.path.dirname(full).rstrip("/") + "/"
    name, dot, ext = base.rpartition(".")
    table = {
        "o": given,
        "p": full,
        "s": base,
        "d": directory,
        "c": os.path.basename(directory.rstrip("/")),
        "e": ext if dot else "",
        "n": name if dot else base,
        "x": section or "",
        "j": _djb33x(full),
    }
    try:
        table["i"] = str(os.lstat(full).st_ino)
    except OSError:
        table["i"] = ""
    parts = [p for p in directory.split("/") if p]
    for index in range(10):
        table[str(index)] = parts[index] if index < len(parts) else ""
    return table


def host_vars(cwd: str, environ: Mapping[str, str]) -> dict[str, str]:
    uid, gid = os.getuid(), os.getgid()
    try:
        user = pwd.getpwuid(uid).pw_name
    except KeyError:
        user = str(uid)
    try:
        group = grp.getgrgid(gid).gr_name
    except KeyError:
        group = str(gid)
    return {
        "v": cwd,
        "h": socket.gethostname(),
        "k": str(os.cpu_count() or 1),
        "u": str(uid),
        "U": user,
        "g": str(gid),
        "G": group,
        "[": "\033",
    }


@dataclass
class MagicTable:
    """The variables of the file being read, and the first file's (upper case)."""

    host: dict[str, str]
    first: dict[str, str] = field(default_factory=dict)

    def for_file(self, given: str, section: Optional[str], cwd: str) -> dict[str, str]:
        own = file_vars(given, section, cwd)
        if not self.first:
            self.first = {k.upper(): v for k, v in own.items() if k in _FILE_VARS and k.isalpha()}
        return {**self.host, **self.first, **own}


def substitute(line: str, table: Mapping[str, str]) -> tuple[str, list[str]]:
    """`line` with its magic variables replaced, and notes on the ones to check.

    Raises ValueError for a line that ends in a lone `%`.
    """
    out: list[str] = []
    notes: list[str] = []
    i = 0
    while i < len(line):
        char = line[i]
        if char != "%":
            out.append(char)
            i += 1
            continue
        if i + 1 >= len(line):
            # uWSGI substitutes the whole file: `%` and the newline become nothing.
            raise ValueError(
                "the line ends with '%', which makes uWSGI join it with the next line;"
                " write '%%' for a percent sign"
            )
        var = line[i + 1]
        i += 2
        if var == "%":
            out.append("%")
        elif var == "(":
            out.append("%(")
        elif var in _UNKNOWABLE:
            notes.append(f"%{var} is {_UNKNOWABLE[var]}, which an import cannot know; left empty")
        elif var in table:
            out.append(table[var])
            if var in _DYNAMIC:
                notes.append(f"%{var} is {_DYNAMIC[var]}: {table[var]!r}")
        else:
            notes.append(f"%{var} names no uWSGI magic variable; uWSGI replaced it with nothing")
    return "".join(out), notes
