"""The validated, frozen app spec: the only configuration the runtime sees.

`specload.load_spec` builds it from YAML; nothing else constructs it except
tests. Every duration is in seconds (float), every path absolute.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional


class ReloadMode(str, enum.Enum):
    """How new code is loaded. A str, so specs and state files spell it as text."""

    GRACEFUL = "graceful"  # FIFO `r`: the master re-execs in place
    CHAIN = "chain"  # FIFO `c` with lazy-apps: one worker at a time
    SWAP = "swap"  # a second master; the old one retires once the new one serves
    RESTART = "restart"  # stop uWSGI and start it anew (a changed command line)

    def __str__(self) -> str:
        return self.value


# The modes a spec may choose for code pushes (restart is the supervisor's own).
RELOAD_MODES = (ReloadMode.GRACEFUL, ReloadMode.CHAIN, ReloadMode.SWAP)

# Default globs for what a code push is made of, and what never is.
DEFAULT_WATCH_INCLUDE = (
    "*.py",
    "*.html",
    "*.jinja",
    "*.jinja2",
    "*.j2",
    "*.txt",
    "*.cfg",
    "*.ini",
    "*.toml",
    "*.yaml",
    "*.yml",
    "*.json",
    "*.css",
    "*.js",
    "*.svg",
    "*.png",
    "*.jpg",
    "*.gif",
    "*.ico",
)
# Never code, whatever the spec says: bytecode, dotfiles, editors' and
# lockers' temporary files, logs, databases and their side files, runtime
# files. A spec's watch.exclude adds to these; it cannot remove them.
NEVER_WATCHED = (
    "__pycache__/*",
    "*.py[cod]",
    ".*",
    "*~",
    "#*#",
    "*.swp",
    "*.swx",
    "*.tmp",
    "*.log",
    "*.log.*",
    "*.sqlite",
    "*.sqlite3",
    "*.db",
    "*.db-journal",
    "*.db-wal",
    "*.db-shm",
    "*-journal",
    "*-wal",
    "*-shm",
    "*.pid",
    "*.sock",
    "*.lock",
    "4913",
    "node_modules/*",
)


# Variables of systemd's contract with the supervisor: an app may not set them,
# and uWSGI must never see them (it would speak sd_notify itself).
SYSTEMD_VARS = (
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
)


@dataclass(frozen=True)
class Address:
    """Where uWSGI listens: a unix socket path or a host and port."""

    path: Optional[Path] = None
    host: str = ""
    port: int = 0

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    def for_uwsgi(self) -> str:
        """The address as uWSGI's `socket`/`http` options spell it."""
        if self.path is not None:
            return str(self.path)
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def for_nginx(self) -> str:
        """The address as nginx's `uwsgi_pass` spells it."""
        if self.path is not None:
            return f"unix:{self.path}"
        return self.for_uwsgi()


@dataclass(frozen=True)
class AppSpec:
    module: str  # importable module, e.g. "flaskr" or "blog.wsgi"
    callable: str  # attribute in that module, e.g. "app" or "create_app"
    factory: bool  # True when the spec said "create_app()": call it once
    chdir: Path  # as written (may be or sit under a symlink); absolute
    virtualenv: Optional[Path] = None
    env: tuple[tuple[str, str], ...] = ()

    @property
    def target(self) -> str:
        """The module spec as the user wrote it."""
        return f"{self.module}:{self.callable}{'()' if self.factory else ''}"


@dataclass(frozen=True)
class UwsgiSpec:
    binary: str  # absolute path or a name looked up on PATH
    socket: Address
    processes: int = 2
    threads: int = 1
    allow_public_socket: bool = False
    http: Optional[Address] = None
    allow_public_http: bool = False
    mount: str = "/"  # "/" or a sub-path like "/bbb" (no trailing slash)
    options: tuple[tuple[str, str], ...] = ()  # passed through as --key value
    # Connections the listening sockets queue while no worker accepts (a
    # restart, a burst): room for nginx's connections during a crash restart.
    listen: int = 1024


@dataclass(frozen=True)
class WatchSpec:
    enabled: bool = True
    paths: tuple[Path, ...] = ()  # defaults to (app.chdir,)
    include: tuple[str, ...] = DEFAULT_WATCH_INCLUDE
    exclude: tuple[str, ...] = NEVER_WATCHED
    debounce: float = 0.2  # quiet window after the last change
    max_wait: float = 2.0  # reload at the latest this long after the first change
    # Swap: the only mode that health-checks new code before it takes traffic
    # and can roll back; it runs two masters for the check and the bake.
    reload: ReloadMode = ReloadMode.SWAP  # one of RELOAD_MODES
    preflight: bool = True
    preflight_timeout: float = 30.0
    poll: bool = False  # force polling instead of inotify


@dataclass(frozen=True)
class MetricsSpec:
    # Where /metrics is served (Prometheus text format): loopback TCP or a
    # unix socket. None: not served.
    listen: Optional[Address] = None


@dataclass(frozen=True)
class HealthSpec:
    """A real HTTP request that new code must answer before it takes traffic.

    Sent to one master's private socket (never the shared listening socket,
    where an old worker could answer for the new code).
    """

    enabled: bool = True
    path: Optional[str] = None  # None: the app's mount point ("/" or "/bbb/")
    expect: tuple[tuple[int, int], ...] = ((100, 499),)  # inclusive status ranges that pass
    host: str = "localhost"  # the Host header (Django's ALLOWED_HOSTS must accept it)
    timeout: float = 5.0
    passes: int = 2  # consecutive passes before a new master takes traffic
    # After a swap the old master is paused, not stopped, this long while the
    # new one is watched; 0: it quits at once (no rollback).
    bake: float = 10.0
    # While running: a check this often; this many failures in a row with
    # every worker busy mean a hung app, replaced through a swap.
    interval: float = 10.0
    failures: int = 3

    def url_path(self, mount: str) -> str:
        return self.path or (mount if mount.endswith("/") else mount + "/")

    def passed(self, status: int) -> bool:
        return any(low <= status <= high for low, high in self.expect)


@dataclass(frozen=True)
class BackoffSpec:
    initial: float = 0.1
    max: float = 30.0
    factor: float = 2.0
    jitter: float = 0.1  # +/- this fraction of each delay


@dataclass(frozen=True)
class RestartSpec:
    backoff: BackoffSpec = field(default_factory=BackoffSpec)
    # Serving (every worker up) this long makes the next crash a new incident,
    # restarted at once; crashes before that back off (supervisord: startsecs=1).
    reset_after: float = 1.0
    max_attempts: Optional[int] = None  # None: never give up


@dataclass(frozen=True)
class NginxSpec:
    group: Optional[str] = None  # group that may connect to the app's unix socket
    static: tuple[tuple[str, Path], ...] = ()  # URL prefix -> directory nginx serves


@dataclass(frozen=True)
class Spec:
    path: Path  # the spec file, absolute
    name: str
    app: AppSpec
    uwsgi: UwsgiSpec
    runtime_dir: Path
    logto: Optional[Path] = None
    user: Optional[str] = None  # service user (unit rendering; uWSGI's uid when run as root)
    group: Optional[str] = None
    watch: WatchSpec = field(default_factory=WatchSpec)
    restart: RestartSpec = field(default_factory=RestartSpec)
    nginx: NginxSpec = field(default_factory=NginxSpec)
    health: HealthSpec = field(default_factory=HealthSpec)
    metrics: MetricsSpec = field(default_factory=MetricsSpec)
    # The event history's dir (kept across restarts and reboots); the loader
    # always sets it (see hostchecks.default_state_dir). None: no history.
    state_dir: Optional[Path] = None
    start_timeout: float = 60.0  # spawn to every worker serving
    reload_timeout: float = 60.0  # reload begun to every worker serving new code
    stop_timeout: float = 30.0  # the stop's `p` to SIGINT

    @property
    def watch_paths(self) -> tuple[Path, ...]:
        return self.watch.paths or (self.app.chdir,)


class LiveSpec:
    """The one holder of the running Spec.

    Everything that acts on the spec reads it through here, and SIGHUP
    installs a new one in one call, so no component can keep a stale copy.
    """

    def __init__(self, spec: Spec) -> None:
        self._spec = spec

    @property
    def spec(self) -> Spec:
        return self._spec

    def install(self, spec: Spec) -> None:
        self._spec = spec


@dataclass(frozen=True)
class InstancePaths:
    """Control files of one uWSGI master; two exist side by side during a swap."""

    root: Path
    tag: str

    @property
    def master_fifo(self) -> Path:
        return self.root / f"master-{self.tag}.fifo"

    @property
    def stats(self) -> Path:
        return self.root / f"stats-{self.tag}.sock"

    @property
    def health(self) -> Path:
        """This master's private HTTP socket: the health check's way in."""
        return self.root / f"health-{self.tag}.sock"

    def tracebacker(self, worker: int) -> Path:
        """uWSGI's py-tracebacker socket of one worker: its Python stacks, on demand."""
        return self.root / f"tb-{self.tag}-{worker}"

    @property
    def hold(self) -> Path:
        """While this file exists, a swap candidate's workers take no traffic."""
        return self.root / f"hold-{self.tag}"


@dataclass(frozen=True)
class RuntimePaths:
    """Files the supervisor keeps in the runtime dir.

    `master.fifo` and `stats.sock` are symlinks to the serving instance's
    files, so people and the CLI always find the live master.
    """

    root: Path

    @property
    def master_fifo(self) -> Path:
        return self.root / "master.fifo"

    @property
    def stats(self) -> Path:
        return self.root / "stats.sock"

    @property
    def app_socket(self) -> Path:
        return self.root / "app.sock"

    @property
    def entry(self) -> Path:
        return self.root / "wsgi_entry.py"

    @property
    def state(self) -> Path:
        return self.root / "state.json"

    @property
    def preflight_output(self) -> Path:
        """What the last import check printed (a traceback, or the app's own output)."""
        return self.root / "preflight.out"

    @property
    def lock(self) -> Path:
        """flock()ed by the live supervisor, which writes its pid into it."""
        return self.root / "supervisor.lock"

    def instance(self, tag: str) -> InstancePaths:
        return InstancePaths(self.root, tag)


def runtime_paths(spec: Spec) -> RuntimePaths:
    return RuntimePaths(spec.runtime_dir)
