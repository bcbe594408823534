"""What uWSGI knows of its options: which are flags, and which exist at all.

Flags (`no_argument` in uWSGI 2.0's option tables, core and plugins) take no
value on the command line: `enable-threads = 1` in an ini becomes
`enable-threads: true` in the spec, never `--enable-threads 1`. Which
options exist is asked of the uWSGI binary the spec will run (`uwsgi
--help`), since plugins add options; an ini key it does not know was
ignored by uWSGI (it has no strict mode by default) but would stop the
supervisor's uWSGI, which runs with `--strict`.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Mapping
from typing import Optional

from supervisor.spec.hostchecks import uwsgi_binary

# uWSGI's words for false (core/uwsgi.c uwsgi_opt_true); anything else is true.
FALSE_WORDS = ("false", "off", "no", "0")

# From uWSGI 2.0's sources: git grep 'no_argument' -- core plugins.
FLAGS = frozenset({  # fmt: skip
    "abstract-socket", "alarm-list", "alarms-list", "auto-procname", "autoload",
    "cache-no-expire", "cache-report-freed-items", "cache-use-last-modified",
    "carbon-name-resolve", "carbon-no-workers", "carbon-resolve-names", "carbon-use-metrics",
    "catch-exceptions", "cflags", "cgi-async-max-attempts", "cgi-close-stdin-on-eof",
    "cgi-do-not-kill-on-error", "cgi-from-docroot", "cgi-mode", "cgi-optimize", "cgi-optimized",
    "cgi-path-info", "cheap", "cheaper-algo-list", "cheaper-algos-list",
    "cheaper-busyness-verbose", "cheaper-list", "check-static-docroot", "clock-list",
    "clocks-list", "close-on-exec", "close-on-exec2", "command-mode", "config-py",
    "daemons-honour-stdin", "die-on-idle", "die-on-term", "disable-logging", "disable-sendfile",
    "disable-write-exception", "dot-h", "drop-after-apps", "drop-after-init", "dump-options",
    "early-emperor", "emperor-graceful-shutdown", "emperor-magic-exec", "emperor-no-blacklist",
    "emperor-nofollow", "emperor-tyrant", "emperor-tyrant-nofollow", "enable-metrics",
    "enable-proxy-protocol", "enable-threads", "end-blacklist", "end-whitelist", "exit-on-reload",
    "fastrouter-cheap", "fastrouter-fallback-on-no-key", "fiber", "force-gateway",
    "forkptyrouter-cheap", "freebind", "geoip-use-disk", "gevent-early-monkey-patch",
    "gevent-monkey-patch", "gevent-wait-for-hub", "greenlet", "harakiri-no-arh",
    "harakiri-verbose", "help", "honour-range", "honour-stdin", "http-auto-chunked",
    "http-auto-gzip", "http-cheap", "http-chunked-input", "http-manage-rtsp",
    "http-manage-source", "http-raw-body", "http-websockets", "https-export-cert",
    "if-not-reload", "if-reload", "ignore-script-name", "ignore-sigpipe", "ignore-write-errors",
    "imperial-monitor-list", "imperial-monitors-list", "jailed", "lazy", "lazy-apps",
    "ldap-schema", "ldap-schema-ldif", "log-4xx", "log-5xx", "log-format-strftime", "log-master",
    "log-master-req-stream", "log-master-stream", "log-micros", "log-reopen", "log-truncate",
    "log-x-forwarded-for", "log-zero", "logfile-chown", "logformat-strftime", "logger-list",
    "loggers-list", "loop-list", "loops-list", "lua-gc-freq", "lua-shell", "luashell",
    "manage-script-name", "master", "master-as-root", "memory-report", "metric-dir-restore",
    "metrics-dir-restore", "metrics-no-cores", "nagios", "never-swap", "no-default-app",
    "no-defer-accept", "no-fd-passing", "no-harakiri-after-req-hook", "no-harakiri-arh",
    "no-initgroups", "no-orphans", "no-server", "no-site", "no-threads-wait", "notfound-log",
    "paste-logger", "pcre-jit", "perl-no-die-catch", "perl-no-plack", "perl-version",
    "persistent-ipcsem", "php-dump-config", "plshell-oneshot", "plugin-list", "plugins-list",
    "propagate-touch", "psgi-enable-psgix-io", "pty-input", "pty-log", "pty-no-isig",
    "py-call-osafterfork", "py-call-uwsgi-fork-hooks", "python-version", "rawrouter-cheap",
    "rawrouter-xclient", "rb-thread", "rb-threads", "rbshell-oneshot", "rbthread", "rbthreads",
    "re-fork", "re-fork-as-root", "re-fork-post-jail", "reaper", "refork", "refork-as-root",
    "refork-post-jail", "reload-on-exception", "reload-os-env", "reuse-port", "router-list",
    "routers-list", "rsyslog-split-messages", "setns-preopen", "show-config", "shutdown-sockets",
    "single-interpreter", "skip-atexit", "skip-atexit-teardown", "skip-zero", "so-keepalive",
    "so-send-timeout", "so-write-timeout", "socket-send-timeout", "socket-write-timeout",
    "spooler-ordered", "spooler-quiet", "ssl-enable-sslv3", "ssl-enable-tlsv1", "ssl-enable3",
    "ssl-option", "ssl-verbose", "sslrouter-cheap", "sslrouter-sni", "stackless",
    "start-unsubscribed", "start_response-nodelay", "static-gzip-all", "stats-http", "stats-min",
    "stats-minified", "stats-no-cores", "stats-no-metrics", "strict", "subscription-dotsplit",
    "subscriptions-use-credentials", "symcall-use-next", "tcp-fast-open-client",
    "tcp-fastopen-client", "tcp-nodelay", "threaded-logger", "thunder-lock", "ugreen",
    "unsubscribe-on-graceful-reload", "usage", "use-abort", "vacuum", "version", "vhost",
    "vhost-host", "write-errors-exception-only", "wsgi-accept-buffer", "wsgi-accept-buffers",
    "wsgi-disable-file-wrapper", "wsgi-strict", "zerg-fallback",
})

_HELP_OPTION = re.compile(r"^\s+(?:-\S\|)?--([A-Za-z0-9_-]+)", re.MULTILINE)
HELP_TIMEOUT = 10.0


def is_true(value: str) -> bool:
    """A flag's value as uWSGI reads it: an empty value is true."""
    return value.strip().lower() not in FALSE_WORDS


def known_options(environ: Mapping[str, str]) -> tuple[Optional[frozenset[str]], str]:
    """The options of the uWSGI the spec runs by default, and that binary's path.

    (None, why) when it cannot be asked: options are then carried unchecked.
    """
    try:
        binary = uwsgi_binary(None, environ.get("PATH", os.defpath))
    except ValueError as exc:
        return None, str(exc)
    try:
        done = subprocess.run(
            [binary, "--help"],
            capture_output=True,
            text=True,
            timeout=HELP_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return None, f"{binary} --help failed: {exc}"
    names = frozenset(_HELP_OPTION.findall(done.stdout))
    if "module" not in names:
        return None, f"{binary} --help lists no Python options (is its python plugin loaded?)"
    return names, binary
