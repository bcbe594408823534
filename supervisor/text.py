"""Text written into config files people install (nginx includes, systemd units)."""

from __future__ import annotations

import re

# A `$` starts a variable in nginx (alias and uwsgi_pass expand them) and
# nginx has no escape for it; control characters have no business in a path
# or a unit value.
UNSAFE = re.compile(r"[$\x00-\x1f\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def comment(text: object) -> str:
    """Text safe inside a `#` comment line: a newline would end the comment."""
    s = str(text)
    return repr(s) if _CONTROL.search(s) else s
