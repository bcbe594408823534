"""Read a uWSGI ini file the way uWSGI 2.0 does (core/ini.c), not as configparser.

One option per line, `key = value`, split at the first `=`; a key alone is
a flag with an empty value. A line whose first character is `;` or `#` is
a comment; a `;` later in a line is part of the value, as uWSGI reads it.
Keys may repeat (several `env =` lines) and stay in file order. Only the
section asked for (`file.ini:section`, default `uwsgi`) is read; a section
given twice is read twice. Magic variables (`%d`, `%n`, ...) are
substituted line by line; `ini`, `include` and `inherit` are followed.
`%(option)`, `$(ENV)` and `@(file)` are the next pass (`expand`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from supervisor.importer.magic import MagicTable, host_vars, substitute
from supervisor.importer.problems import ImportFailure, Where, fail

MAX_INI_BYTES = 1 << 20
MAX_DEPTH = 8
# uWSGI's config logic: options between these lines apply only when a
# condition holds on the host at start, which a spec cannot say.
_LOGIC_ENDS = {"end", "endif", "end-if", "endfor", "end-for"}
_LOGIC_STARTS = {"for", "for-glob", "for-times", "for-readline"}
# Files uWSGI reads at once, in place (`inherit`: after the rest, as a template).
_LOADERS = ("ini", "include", "inherit")


@dataclass(frozen=True)
class Entry:
    """One `key = value` line of the section read, magic variables substituted."""

    key: str
    value: str
    where: Where
    text: str  # the line as written, for the spec's comments
    placeholder: bool = False  # set by set-placeholder: a variable only


@dataclass
class Ini:
    """The options of one section of an ini file and of the files it loads."""

    file: str  # as the user named it
    section: str
    entries: list[Entry] = field(default_factory=list)
    other_sections: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # `FILE:LINE: ...` for stderr
    files: list[str] = field(default_factory=list)  # every file read, first the main one
    referenced: set[str] = field(default_factory=set)  # keys used as %(key)


def split_section(arg: str, cwd: str = "") -> tuple[str, Optional[str]]:
    """`file.ini:section` -> (file, section), as `uwsgi --ini` splits it (last colon)."""
    if os.path.exists(os.path.join(cwd, arg)) or ":" not in arg:
        return arg, None
    file, _, section = arg.rpartition(":")
    return file, section or None


def read_ini(arg: str, cwd: str, environ: Mapping[str, str]) -> Ini:
    """The section `arg` names (`file.ini` or `file.ini:section`) with its includes.

    Raises ImportFailure with one `FILE:LINE: message` per problem.
    """
    file, section = split_section(arg, cwd)
    reader = _Reader(cwd, MagicTable(host_vars(cwd, environ)))
    ini = Ini(file=file, section=section or "uwsgi")
    found = reader.read(ini, file, section, None, ())
    if not found:
        raise _no_section(file, ini.section, reader.sections.get(file, []))
    ini.other_sections = [s for s, _ in reader.sections.get(file, []) if s != ini.section]
    for where, path, sect in reader.deferred:
        reader.read(ini, path, sect, where, (file,))
    return ini


def _no_section(file: str, section: str, sections: list[tuple[str, int]]) -> ImportFailure:
    if not sections:
        return fail(
            Where(file, 1),
            f"no [{section}] section: the file has no section at all, and uWSGI reads"
            f" options only under [{section}]; add a [{section}] line at the top",
        )
    names = ", ".join(f"[{name}] (line {line})" for name, line in sections)
    first = sections[0][0]
    return fail(
        Where(file, sections[0][1]),
        f"no [{section}] section; the file has {names}: name the one to import,"
        f" e.g. uwsgi-supervisor import {file}:{first}",
    )


class _Reader:
    def __init__(self, cwd: str, magic: MagicTable) -> None:
        self.cwd = cwd
        self.magic = magic
        self.sections: dict[str, list[tuple[str, int]]] = {}
        self.deferred: list[tuple[Where, str, Optional[str]]] = []

    def read(
        self,
        ini: Ini,
        file: str,
        section: Optional[str],
        loaded_at: Optional[Where],
        chain: tuple[str, ...],
    ) -> bool:
        """Add the entries of `section` of `file` to `ini`; False if it has none."""
        text = self._text(file, loaded_at)
        ini.files.append(file)
        table = self.magic.for_file(file, section, self.cwd)
        asked = section or "uwsgi"
        current: Optional[str] = None
        found = False
        seen: list[tuple[str, int]] = []
        for number, raw in enumerate(text.split("\n"), start=1):
            where = Where(file, number)
            try:
                line, notes = substitute(raw, table)
            except ValueError as exc:
                raise fail(where, str(exc)) from None
            line = line.strip(" \t\r")
            if not line or line[0] in ";#":
                continue
            if line[0] == "[":
                current = _section_name(line, where)
                seen.append((current, number))
                found = found or current == asked
                continue
            if current != asked:
                if current is None:
                    ini.notes.append(f"{where}: before any section: uWSGI ignores it")
                continue
            ini.notes.extend(f"{where}: {note}" for note in notes)
            entry = _entry(line, where, re.sub(r"[ \t\r]+", " ", raw.strip(" \t\r")))
            if entry.key in _LOADERS:
                self._load(ini, entry, chain + (file,))
            else:
                ini.entries.append(entry)
        self.sections[file] = seen
        return found

    def _text(self, file: str, loaded_at: Optional[Where]) -> str:
        path = file if os.path.isabs(file) else os.path.join(self.cwd, file)
        where = loaded_at or Where(file, 0)
        try:
            with open(path, "rb") as f:
                data = f.read(MAX_INI_BYTES + 1)
        except OSError as exc:
            what = f"cannot read {file}" if loaded_at else "cannot read it"
            message = f"{what}: {exc.strerror or exc}"
            shown = f"{where}: {message}" if loaded_at else f"{file}: {message}"
            raise ImportFailure([shown]) from None
        if len(data) > MAX_INI_BYTES:
            raise ImportFailure([f"{file}: over {MAX_INI_BYTES} bytes; not a uWSGI ini file"])
        if data.startswith(b"\xef\xbb\xbf"):
            raise fail(
                Where(file, 1),
                "starts with a UTF-8 byte order mark, which hides the first line from uWSGI"
                " (its [section] header too); save the file without it",
            )
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise fail(Where(file, line), "not UTF-8 text; is this a uWSGI ini file?") from None

    def _load(self, ini: Ini, entry: Entry, chain: tuple[str, ...]) -> None:
        """Follow `ini =`, `include =` or `inherit =`: uWSGI reads the file right there."""
        value = entry.value
        for mark in ("%(", "$(", "@("):
            if mark in value:
                raise fail(
                    entry.where,
                    f"{entry.key} = {value}: uWSGI reads this file at once, before it"
                    f" expands {mark}...): it would look for that name literally; write the path",
                )
        file, section = split_section(value, self.cwd) if entry.key == "ini" else (value, None)
        if not file.endswith(".ini"):
            raise fail(
                entry.where,
                f"{entry.key} = {value}: only ini files can be imported; put its options"
                " into this file, or convert it to ini",
            )
        path, found_beside = self._find(entry, file)
        if found_beside:
            ini.notes.append(
                f"{entry.where}: {file} is not in {self.cwd}, where uWSGI would have looked"
                f" if started here; read the one next to {entry.where.file}"
            )
        if path in chain or len(chain) > MAX_DEPTH:
            raise fail(entry.where, f"{entry.key} = {value}: loads itself again (a loop)")
        ini.notes.append(f"{entry.where}: read {path} ({entry.key} = {value})")
        if entry.key == "inherit":
            self.deferred.append((entry.where, path, section))
            return
        if not self.read(ini, path, section, entry.where, chain) and section:
            raise _no_section(path, section, self.sections.get(path, []))

    def _find(self, entry: Entry, file: str) -> tuple[str, bool]:
        """The file as uWSGI would open it: relative to the directory it ran in
        (here: where the import runs), else next to the file that loads it (True)."""
        if os.path.isabs(file):
            candidates = [file]
        else:
            beside = str(Path(entry.where.file).parent / file)
            candidates = [os.path.join(self.cwd, file), beside]
        for candidate in candidates:
            if os.path.isfile(candidate):
                # Shown as the user would name it from here: relative stays relative.
                shown = os.path.relpath(candidate, self.cwd) if not os.path.isabs(file) else file
                return os.path.normpath(shown), candidate != candidates[0]
        looked = " or ".join(candidates)
        raise fail(entry.where, f"{entry.key} = {entry.value}: no such file (looked for {looked})")


def _section_name(line: str, where: Where) -> str:
    if not line.endswith("]"):
        raise fail(
            where,
            f"section header {line!r} has no closing ']' (uWSGI would read it as"
            f" [{line[1:-1]}]); write [{line[1:]}]",
        )
    return line[1:-1]


def _entry(line: str, where: Where, text: str) -> Entry:
    key, equals, value = line.partition("=")
    key, value = key.rstrip(" \t\r"), value.strip(" \t\r")
    if not key:
        raise fail(where, f"{line!r}: no option name before '='")
    if key in _LOGIC_ENDS or key in _LOGIC_STARTS or key.startswith(("if-", "if_")):
        raise fail(
            where,
            f"{key} = {value}: uWSGI's config logic (conditions and loops) decides on the"
            " host at each start, which a spec cannot; keep the lines that apply on the"
            " new host, remove the logic, and import again",
        )
    if key in ("set-placeholder", "set-ph"):
        name, has, var = value.partition("=")
        if not has or not name.strip():
            raise fail(where, f"{key} = {value}: write {key} = NAME=VALUE")
        return Entry(name.strip(), var.strip(), where, text, placeholder=True)
    return Entry(key, value if equals else "", where, text)
