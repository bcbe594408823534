"""Render the nginx include that puts a Spec's app at its mount.

Text for people to install; nothing here touches the system. The systemd
drop-in is rendered by `supervisor.systemd.unit`.
"""

from __future__ import annotations

import re
from typing import Optional

from supervisor.spec.model import Spec
from supervisor.spec.values import URL_PATH, check_name
from supervisor.text import UNSAFE, comment

# nginx's own default for uwsgi_read_timeout, in seconds.
NGINX_READ_TIMEOUT = 60
# How far nginx waits past uWSGI's harakiri: the master checks harakiri about
# once a second and the killed worker's connection must close first, so the
# user gets harakiri's 502 and its log line rather than nginx's earlier 504
# while the worker keeps running.
HARAKIRI_MARGIN = 30

# What nginx takes as a bare word. A `$` anywhere starts a variable (alias and
# uwsgi_pass expand them) and nginx has no escape for it; control characters
# have no business in a path.
_BARE = re.compile(r"[A-Za-z0-9/_.:@%+=,~-]+")
def _name(spec: Spec) -> str:
    return check_name(spec.name)  # it names the include


def nginx_value(text: str) -> str:
    """One nginx directive argument: bare when safe, else double-quoted."""
    if UNSAFE.search(text):
        raise ValueError(f"cannot be written into nginx's config: {text!r}")
    if _BARE.fullmatch(text):
        return text
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _url_prefix(text: str, what: str) -> str:
    """A location prefix ending in "/": without it `/static` matches `/static../x`."""
    if not URL_PATH.fullmatch(text) or "/../" in text + "/" or "/./" in text + "/":
        raise ValueError(f"{what}: not a plain URL path: {text!r}")
    return text.rstrip("/") + "/"


def _harakiri(spec: Spec) -> Optional[int]:
    """uWSGI's harakiri in seconds (the last one given wins), if set and on."""
    values = [value for key, value in spec.uwsgi.options if key == "harakiri"]
    try:
        seconds = int(values[-1]) if values else 0
    except ValueError:
        return None  # the spec loader reports it; rendering stays possible
    return seconds if seconds > 0 else None


def nginx_read_timeout(spec: Spec) -> int:
    """Seconds nginx waits for the app's response: past harakiri, if set."""
    harakiri = _harakiri(spec)
    if harakiri is None:
        return NGINX_READ_TIMEOUT
    return max(NGINX_READ_TIMEOUT, harakiri + HARAKIRI_MARGIN)


def _header(spec: Spec) -> list[str]:
    lines = [
        f"# nginx locations for the uwsgi-supervisor app {_name(spec)},",
        f"# rendered from {comment(spec.path)} by `uwsgi-supervisor render nginx`:",
        "# render it again after changing the spec.",
        "#",
        "# Not a whole config: include it inside your own server { ... } block,",
        "# which must not define these locations itself:",
        "#",
        "#     server {",
        "#         listen 80;",
        "#         server_name example.org;",
        f"#         include /etc/nginx/snippets/uwsgi-supervisor-{spec.name}.conf;",
        "#     }",
        "#",
        "# `include uwsgi_params;` below is looked up next to nginx.conf",
        "# (Debian: /etc/nginx/uwsgi_params).",
    ]
    if spec.uwsgi.socket.is_unix and spec.nginx.group:
        lines += [
            "#",
            f"# nginx's worker user (nginx.conf `user`) must be in group {spec.nginx.group!r}",
            "# to connect to the app's socket.",
        ]
    return lines


def _app_body(spec: Spec) -> list[str]:
    """Directives that pass a request to uWSGI, with the full URI."""
    lines = [
        "    include uwsgi_params;",
        f"    uwsgi_pass {nginx_value(spec.uwsgi.socket.for_nginx())};",
    ]
    harakiri = _harakiri(spec)
    if harakiri:
        lines += [
            f"    # Past uWSGI's harakiri ({harakiri}s): a stuck request ends in harakiri's",
            "    # 502 and log line, not in a 504 while the worker runs on.",
        ]
    return [
        *lines,
        f"    uwsgi_read_timeout {nginx_read_timeout(spec)}s;",
        "    # Never retry a timeout: the app may have done the work. (One socket",
        "    # means one server, so nginx has nothing to retry on anyway; the",
        "    # supervisor keeps that socket open across crashes and swaps.)",
        "    uwsgi_next_upstream error;",
    ]


def _mount_locations(spec: Spec) -> list[str]:
    mount = spec.uwsgi.mount
    if mount == "/":
        return ["location / {", *_app_body(spec), "}"]
    prefix = _url_prefix(mount, "uwsgi.mount")
    bare = prefix.rstrip("/")
    return [
        f"# {bare} itself is not under the app: send the browser to {prefix},",
        "# keeping the query string. A relative Location keeps the scheme, host",
        "# and port the browser used, also behind a non-default port or a TLS",
        "# proxy, and reflects no client-supplied Host header.",
        f"location = {bare} {{",
        "    absolute_redirect off;",
        f"    return 301 {prefix}$is_args$args;",
        "}",
        "",
        f"# The full URI goes to uWSGI, which mounts the app at {bare} (manage-script-name):",
        f"# SCRIPT_NAME={bare}, so the app's url_for() builds {prefix}... links.",
        f"location {prefix} {{",
        *_app_body(spec),
        "}",
    ]


def _static_locations(spec: Spec) -> list[str]:
    lines: list[str] = []
    for url, directory in spec.nginx.static:
        prefix = _url_prefix(url, "nginx.static")
        lines += [
            "",
            f"# Files under {prefix} straight from disk. Both ends keep their trailing",
            f"# slash, else alias lets {prefix[:-1]}../ escape the directory; ^~ keeps",
            "# the server block's regex locations from taking these requests.",
            f"location ^~ {prefix} {{",
            f"    alias {nginx_value(str(directory).rstrip('/') + '/')};",
            "}",
        ]
    return lines


def render_nginx(spec: Spec) -> str:
    """The nginx include (location blocks) that serves the spec's app."""
    lines = [*_header(spec), "", *_mount_locations(spec), *_static_locations(spec)]
    return "\n".join(lines) + "\n"
