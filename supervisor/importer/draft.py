"""The spec an import writes: its settings with the comments that explain them,
and what was not carried over; rendered as commented YAML.
"""

from __future__ import annotations

import json
import re
import textwrap
from dataclasses import dataclass, field
from typing import Union

import yaml

from supervisor.text import comment

Value = Union[str, int, bool, list[str]]

# Where each setting goes, in the order the spec is written (etc/example.yaml's).
ORDER = (
    "name", "user", "group",
    "app.module", "app.chdir", "app.virtualenv", "app.env",
    "uwsgi.socket", "uwsgi.http", "uwsgi.processes", "uwsgi.threads", "uwsgi.listen",
    "uwsgi.mount", "uwsgi.options",
    "logto",
    "nginx.group", "nginx.static",
    "watch.reload",
)  # fmt: skip
_PLAIN = re.compile(r"[A-Za-z0-9_/.@+~-][A-Za-z0-9_/.@+~:=,()-]*")


@dataclass
class Setting:
    value: Value
    comments: list[str] = field(default_factory=list)


@dataclass
class Draft:
    """Settings by dotted key; mappings (env, options, static) by their own keys."""

    header: list[str] = field(default_factory=list)
    settings: dict[str, Setting] = field(default_factory=dict)
    env: dict[str, Setting] = field(default_factory=dict)
    options: dict[str, Setting] = field(default_factory=dict)
    static: dict[str, Setting] = field(default_factory=dict)
    owned: list[str] = field(default_factory=list)  # now the supervisor's: comment lines
    dropped: list[str] = field(default_factory=list)  # not carried over: comment lines
    warnings: list[str] = field(default_factory=list)  # for stderr only

    def set(self, key: str, value: Value, *comments: str) -> None:
        self.settings[key] = Setting(value, list(comments))

    def add_option(self, name: str, value: Union[str, bool], *comments: str) -> None:
        """An option for uwsgi.options; a repeated one becomes a list, as uWSGI repeats it."""
        if name not in self.options:
            self.options[name] = Setting(value, [*comments])
            return
        setting = self.options[name]
        old = setting.value
        if isinstance(value, bool) and isinstance(old, bool):
            setting.value = value  # a flag given again: uWSGI keeps the last
            setting.comments.extend(comments)
            return
        items = old if isinstance(old, list) else [_text(old)]
        setting.value = [*items, _text(value)]
        setting.comments.extend(comments)


def _text(value: Value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def scalar(value: Value, numbers_as_text: bool = False) -> str:
    """A YAML scalar that reads back as `value`: bare when safe, else double-quoted.

    `numbers_as_text`: bare numbers are fine where the spec takes the text
    as written (uwsgi.options: 010 stays "010").
    """
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    assert isinstance(value, str)
    if _PLAIN.fullmatch(value):
        try:
            loaded = yaml.safe_load(value)
        except yaml.YAMLError:
            loaded = None
        if loaded == value or (
            numbers_as_text and isinstance(loaded, (int, float)) and not isinstance(loaded, bool)
        ):
            return value
    return json.dumps(value, ensure_ascii=False)


WIDTH = 88  # comment lines wrap here: a spec is read in terminals and editors


def _wrap(text: str, first: str, rest: str) -> list[str]:
    """One comment, wrapped at WIDTH: `first` starts it, `rest` its continuation lines."""
    wrapped = textwrap.wrap(
        comment(text),
        width=WIDTH,
        initial_indent=first,
        subsequent_indent=rest,
        break_long_words=False,
        break_on_hyphens=False,
    )
    return wrapped or [first.rstrip()]


def _comments(lines: list[str], indent: str) -> list[str]:
    return [w for line in lines for w in _wrap(line, f"{indent}# ", f"{indent}# ")]


def render(draft: Draft) -> str:
    """The spec as commented YAML."""
    out: list[str] = []
    for line in draft.header:  # an indented line is a command: kept whole
        out += [f"# {comment(line)}"] if line.startswith(" ") else _wrap(line, "# ", "# ")
    section = ""
    for key in ORDER:
        top, _, sub = key.rpartition(".") if "." in key else ("", "", key)
        block = _block(draft, key, sub, "  " if top else "")
        if not block:
            continue
        if top != section or not top:
            out.append("")
            if top:
                out.append(f"{top}:")
            section = top
        out.extend(block)
    for title, lines in (
        ("Now the supervisor's (not carried over, on purpose):", draft.owned),
        ("NOT CARRIED OVER (do these by hand, or leave them out):", draft.dropped),
    ):
        if lines:
            out += ["", f"# {title}"]
            out += [w for line in lines for w in _wrap(line, "#   ", "#       ")]
    return "\n".join(out).lstrip("\n") + "\n"


def _block(draft: Draft, key: str, name: str, indent: str) -> list[str]:
    mappings = {"app.env": draft.env, "uwsgi.options": draft.options, "nginx.static": draft.static}
    if key in mappings:
        items = mappings[key]
        if not items:
            return []
        lines = [f"{indent}{name}:"]
        inner = indent + "  "
        as_text = key == "uwsgi.options"
        for item_key, setting in items.items():
            lines += _comments(setting.comments, inner)
            lines += _item(f"{inner}{scalar(item_key)}", setting.value, inner, as_text)
        return lines
    single = draft.settings.get(key)
    if single is None:
        return []
    return [*_comments(single.comments, indent), *_item(f"{indent}{name}", single.value, indent)]


def _item(head: str, value: Value, indent: str, numbers_as_text: bool = False) -> list[str]:
    if isinstance(value, list):
        return [f"{head}:"] + [f"{indent}  - {scalar(v, numbers_as_text)}" for v in value]
    return [f"{head}: {scalar(value, numbers_as_text)}"]
