"""Parsers for the values a spec spells as text: durations, addresses, app targets.

Pure functions of the text: no filesystem, no YAML. Each raises ValueError
with a message a user can act on.
"""

from __future__ import annotations

import ipaddress
import keyword
import math
import os
import re
from pathlib import Path
from typing import Optional

from supervisor.spec.model import SYSTEMD_VARS, Address

DURATION_FORMS = "use a number of seconds or 300ms, 2s, 1m (units: ms, s, m, h)"
_UNIT_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
_NUMBER = r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_PART = re.compile(rf"\s*({_NUMBER})\s*(ms|s|m|h)")


def parse_duration(value: object) -> float:
    """Seconds in a duration: a number of seconds, or text like 300ms, 2s, 1m, 1h, 1m30s."""
    if isinstance(value, bool):
        raise ValueError(f"bad duration {value!r} (a boolean); {DURATION_FORMS}")
    if isinstance(value, (int, float)):
        if not math.isfinite(value):
            raise ValueError(f"bad duration {value!r}; {DURATION_FORMS}")
        if value < 0:
            raise ValueError(f"negative duration {value!r}; a duration must be 0 or more")
        return float(value)
    if not isinstance(value, str):
        raise ValueError(f"bad duration {value!r}; {DURATION_FORMS}")
    text = value.strip()
    if text.startswith("-") and _duration_text(text[1:]) is not None:
        raise ValueError(f"negative duration '{value}'; a duration must be 0 or more")
    seconds = _duration_text(text)
    if seconds is None:
        raise ValueError(f"bad duration '{value}'; {DURATION_FORMS}")
    return seconds


def _duration_text(text: str) -> Optional[float]:
    text = text.lstrip("+")
    if re.fullmatch(_NUMBER, text):
        return float(text)
    if not re.fullmatch(rf"(?:{_PART.pattern})+\s*", text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _PART.findall(text))


def format_duration(seconds: float) -> str:
    """A duration as a person would write it in a spec: 0.3 -> 300ms, 90 -> 90s, 60 -> 1m."""
    if 0 < seconds < 1:
        return f"{seconds * 1000:g}ms"
    for unit, size in (("h", 3600), ("m", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds / size:g}{unit}"
    return f"{seconds:g}s"


# Room for the NUL in struct sockaddr_un.sun_path (108 bytes on Linux).
UNIX_PATH_MAX = 107


def parse_address(text: str) -> Address:
    """A listen address: /path, unix:/path, host:port, [v6]:port or :port."""
    if text.startswith("unix:") or text.startswith("/"):
        return _unix_address(text[5:] if text.startswith("unix:") else text)
    if text.startswith("@"):
        raise ValueError(
            f"abstract unix sockets ({text}) are not supported; use a path like /run/app.sock"
        )
    if text.startswith("["):
        match = re.fullmatch(r"\[([^\]]*)\]:([^:]*)", text)
        if not match:
            raise ValueError(f"bad address '{text}'; write an IPv6 address as [::1]:8000")
        host, port = match.groups()
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"'{host}' in '{text}' is not an IPv6 address") from None
    else:
        if ":" not in text:
            raise ValueError(
                f"'{text}' is neither a unix socket path (/run/app.sock, unix:/run/app.sock) "
                "nor host:port (127.0.0.1:8000)"
            )
        host, _, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(f"bad address '{text}'; put an IPv6 address in brackets: [::1]:8000")
        if host and not _is_ip(host) and not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*)", host):
            raise ValueError(f"'{host}' in '{text}' is neither an IP address nor a host name")
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        raise ValueError(f"bad port '{port}' in '{text}'; give a port from 1 to 65535")
    return Address(host=host, port=int(port))


def _unix_address(path: str) -> Address:
    if not path.startswith("/"):
        raise ValueError(f"unix socket path '{path}' must be absolute (start with '/')")
    if path.endswith("/"):
        raise ValueError(f"unix socket path '{path}' names a directory; add a file name")
    size = len(os.fsencode(path))
    if size > UNIX_PATH_MAX:
        raise ValueError(
            f"unix socket path is {size} bytes; the kernel's limit is {UNIX_PATH_MAX}: "
            "use a shorter path"
        )
    return Address(path=Path(path))


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def is_loopback(address: Address) -> bool:
    """True for unix sockets and for TCP on localhost, 127.0.0.0/8 or ::1."""
    if address.is_unix or address.host == "localhost":
        return True
    try:
        return ipaddress.ip_address(address.host).is_loopback
    except ValueError:
        return False


def listen_scope(address: Address) -> str:
    """Who can reach a non-loopback TCP address, in words."""
    if address.host in ("", "0.0.0.0", "::"):
        return "all network interfaces"
    return f"{address.host}, which is not a loopback address"


_IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
_TARGET = re.compile(rf"({_IDENT}(?:\.{_IDENT})*):({_IDENT})(\(\))?")
TARGET_FORMS = (
    "write 'package.module:app' for an app object, "
    "or 'package.module:create_app()' for an app factory"
)


def parse_app_target(text: str) -> tuple[str, str, bool]:
    """(module, callable, factory) from 'pkg.mod:app' or 'pkg.mod:create_app()'."""
    match = _TARGET.fullmatch(text)
    if match:
        module, callable_, call = match.groups()
        names = module.split(".") + [callable_]
        reserved = [n for n in names if keyword.iskeyword(n)]
        if not reserved:
            return module, callable_, bool(call)
        reason = f"'{reserved[0]}' is a Python keyword, not a name"
    else:
        reason = _target_reason(text)
    raise ValueError(f"bad app target '{text}': {reason}; {TARGET_FORMS}")


def _target_reason(text: str) -> str:
    if "/" in text or text.endswith(".py"):
        return "that looks like a file path; give the module's import name"
    module, colon, callable_ = text.partition(":")
    if not colon:
        return "it names no callable (the part after ':')"
    if not callable_:
        return "nothing follows ':'"
    if not re.fullmatch(rf"{_IDENT}(?:\.{_IDENT})*", module):
        return f"'{module}' is not a Python module path"
    if "(" in callable_ and re.fullmatch(rf"{_IDENT}\(.+\)", callable_):
        return "an app factory is called without arguments: end it with '()'"
    return f"'{callable_}' is not a Python name"


# The characters nginx and uWSGI take in a location without quoting or escaping.
URL_PATH = re.compile(r"/[A-Za-z0-9/_.~+@,-]*")


def normalise_mount(text: str) -> str:
    """A URL path prefix: '/' or '/sub' (a trailing slash is dropped)."""
    if not text.startswith("/"):
        raise ValueError(f"'{text}' must start with '/', e.g. /{text.lstrip('./')}")
    if re.search(r"\s", text):
        raise ValueError(f"'{text}' must not contain spaces")
    if not URL_PATH.fullmatch(text):
        raise ValueError(
            f"'{text}' must be a plain URL path: letters, digits and / _ . ~ + @ , - only"
        )
    path = text.rstrip("/") or "/"
    segments = path.split("/")[1:]
    if ".." in segments or "." in segments:
        raise ValueError(f"'{text}' must not contain '.' or '..' segments")
    if "" in segments and path != "/":
        raise ValueError(f"'{text}' must not contain '//'")
    return path


def check_name(text: str) -> str:
    """An app name: it becomes part of file paths and of the systemd unit's name."""
    if not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", text):
        raise ValueError(
            f"'{text}' is not a valid name; use letters, digits, '_', '.' and '-' "
            "(not first), because it names files and the systemd unit"
        )
    return text


def check_env_name(name: str) -> str:
    """A name the app's environment may set."""
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise ValueError(
            f"'{name}' is not a valid environment variable name; "
            "use letters, digits and '_', not starting with a digit"
        )
    if name.upper().startswith("UWSGI_"):
        raise ValueError(
            f"uWSGI reads {name} as its option --{name[6:].lower().replace('_', '-')}; "
            "set uWSGI options under uwsgi.options instead"
        )
    if name in SYSTEMD_VARS:
        raise ValueError(f"{name} belongs to systemd and uwsgi-supervisor; remove it")
    return name
