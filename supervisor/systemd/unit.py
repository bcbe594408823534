"""Render the systemd drop-in that runs a Spec's app as its user and group."""

from __future__ import annotations

from supervisor.spec.model import Spec
from supervisor.spec.values import check_name
from supervisor.text import UNSAFE, comment


def unit_value(text: str) -> str:
    """One value of a unit setting, as systemd will read it back."""
    # A trailing backslash would continue the line; systemd strips outer blanks.
    if UNSAFE.search(text) or not text.strip() or text != text.strip() or text.endswith("\\"):
        raise ValueError(f"cannot be written into a systemd unit: {text!r}")
    return text.replace("%", "%%")  # systemd expands %-specifiers


def render_unit_dropin(spec: Spec) -> str:
    """The systemd drop-in that runs the spec's app as its user and group."""
    unit = f"uwsgi-supervisor@{check_name(spec.name)}.service"
    lines = [
        f"# systemd drop-in for {unit}, rendered from {comment(spec.path)}",
        "# by `uwsgi-supervisor render unit`.",
        f"# Install as /etc/systemd/system/{unit}.d/override.conf, then run",
        f"#     systemctl daemon-reload && systemctl restart {unit}",
        "[Service]",
    ]
    if spec.user:
        lines.append(f"User={unit_value(spec.user)}")
    if spec.group:
        lines.append(f"Group={unit_value(spec.group)}")
    elif spec.user:
        lines += ["# Empty: the user's own group, not the one the unit sets.", "Group="]
    if spec.uwsgi.socket.is_unix and spec.nginx.group and spec.nginx.group != spec.group:
        lines += [
            f"# The app socket is handed to group {spec.nginx.group!r} so nginx can",
            "# connect; a user may only chown a file to a group it belongs to.",
            f"SupplementaryGroups={unit_value(spec.nginx.group)}",
        ]
    if not (spec.user or spec.group):
        lines.append("# No user in the spec: the service keeps the unit's own user.")
    return "\n".join(lines) + "\n"
