"""inotify's per-user limits: noticing them and telling people how to raise them.

watchdog (7.x) raises ENOSPC only when the watched root itself cannot be
watched; a subdirectory that hits the limit is skipped silently. So after
arming, `watch_limit_reached()` tries to add one more watch of its own.
"""

from __future__ import annotations

import ctypes
import errno
import os
from typing import Optional

IN_DELETE_SELF = 0x400
LIMIT_ERRNOS = (errno.ENOSPC, errno.EMFILE)

_libc: Optional[ctypes.CDLL] = None


def _c() -> ctypes.CDLL:
    global _libc
    if _libc is None:
        _libc = ctypes.CDLL(None, use_errno=True)
    return _libc


def watch_limit_reached() -> bool:
    """True if this user cannot add one more inotify watch right now.

    Uses a fresh inotify instance (which holds no watch yet) and closes it at
    once. Inconclusive cases (no instance to spare, no inotify) answer False.
    """
    libc = _c()
    try:
        fd = libc.inotify_init1(os.O_CLOEXEC)
    except AttributeError:
        return False
    if fd < 0:
        return False
    try:
        wd = libc.inotify_add_watch(fd, b"/", IN_DELETE_SELF)
        return bool(wd < 0 and ctypes.get_errno() == errno.ENOSPC)
    finally:
        os.close(fd)


def is_limit_error(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and exc.errno in LIMIT_ERRNOS


def _read(path: str) -> Optional[int]:
    try:
        with open(path) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return None


def _current_limit(key: str, userns_key: str) -> str:
    """The sysctl's value, and a lower one set for this user namespace (containers)."""
    host = _read("/proc/sys/fs/inotify/" + key)
    text = "?" if host is None else str(host)
    own = _read("/proc/sys/user/" + userns_key)
    if own is not None and (host is None or own < host):
        text += f"; /proc/sys/user/{userns_key} = {own}"
    return text


def limit_message(err: int, where: str) -> str:
    """One line saying which inotify limit ran out, what happens now, and the fix."""
    if err == errno.EMFILE:
        key, what, value = "max_user_instances", "too many inotify instances", "1024"
    else:
        key, what, value = "max_user_watches", "inotify watch limit reached", "524288"
    setting = f"fs.inotify.{key}"
    current = _current_limit(key, key.replace("_user_", "_inotify_"))
    return (
        f"{what} while watching {where} ({setting} = {current}): "
        f"falling back to polling, which notices changes later and costs CPU on big trees; "
        f"to fix, run `sysctl -w {setting}={value}` and keep it across reboots with "
        f"a file in /etc/sysctl.d/ (e.g. /etc/sysctl.d/60-inotify.conf "
        f"containing `{setting} = {value}`), then restart this service"
    )
