"""CodeWatcher against real inotify (and polling) on real files in tmp dirs.

A small loop like the supervisor's drives each test: a self-pipe woken by the
watcher, `drain()` into a Debouncer, `take()` when due. Deadlines here only
stop a broken test from hanging; no test asserts how fast anything happened.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Callable, Optional

import pytest
from watchdog.observers.api import BaseObserver
from watchdog.observers.polling import PollingObserver

from supervisor.codepush.debounce import Batch, Change, Debouncer
from supervisor.codepush.paths import PathFilter, resolve
from supervisor.codepush.watcher import CodeWatcher
from supervisor.spec.model import DEFAULT_WATCH_INCLUDE, NEVER_WATCHED

REPO = Path(__file__).resolve().parent.parent
WAIT = 15.0  # seconds before a test that expects something gives up
SETTLE = 1.0  # seconds of listening after the expected batch, to catch extra ones


class Loop:
    """The supervisor loop in miniature: self-pipe, drain, debounce, take."""

    def __init__(self, quiet: float = 0.2, max_wait: float = 60.0) -> None:
        self.r, self.w = os.pipe()
        os.set_blocking(self.r, False)
        os.set_blocking(self.w, False)
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.r, selectors.EVENT_READ)
        self.debouncer = Debouncer(quiet=quiet, max_wait=max_wait)
        self.logs: list[str] = []
        self.log_threads: set[int] = set()
        self.changes: list[Change] = []
        self.batches: list[Batch] = []
        self.reload_until = 0.0  # while now < this, "a reload is running": no take()
        self.watchers: list[CodeWatcher] = []

    def wake(self) -> None:
        try:
            os.write(self.w, b"\0")
        except BlockingIOError:
            pass

    def log(self, line: str) -> None:
        self.log_threads.add(threading.get_ident())
        self.logs.append(line)

    def watcher(
        self,
        paths: Sequence[Path],
        ignore: Sequence[Path] = (),
        poll: bool = False,
        **kw: Any,
    ) -> CodeWatcher:
        w = CodeWatcher(
            paths=paths,
            include=DEFAULT_WATCH_INCLUDE,
            exclude=NEVER_WATCHED,
            ignore=ignore,
            poll=poll,
            wake=self.wake,
            log=self.log,
            **kw,
        )
        self.watchers.append(w)
        w.start()
        return w

    def step(self, timeout: float) -> None:
        deadline = self.debouncer.deadline()
        now = time.monotonic()
        if deadline is not None:
            timeout = min(timeout, max(0.0, deadline - now))
        if self.reload_until > now:
            timeout = min(timeout, self.reload_until - now)
        if self.sel.select(timeout):
            try:
                while os.read(self.r, 4096):
                    pass
            except BlockingIOError:
                pass
        now = time.monotonic()
        for w in self.watchers:
            changes = w.drain()
            self.changes.extend(changes)
            self.debouncer.add(now, changes)
        if now >= self.reload_until and self.debouncer.due(now):
            self.batches.append(self.debouncer.take())

    def pump(self, seconds: float, until: Optional[Callable[[], bool]] = None) -> bool:
        end = time.monotonic() + seconds
        while True:
            if until is not None and until():
                return True
            left = end - time.monotonic()
            if left <= 0:
                return until is None
            self.step(min(left, 0.05))

    def expect_batches(self, n: int) -> list[Batch]:
        """Wait for the n-th batch, listen a while longer, then insist on exactly n."""
        assert self.pump(WAIT, lambda: len(self.batches) >= n), (
            f"expected {n} batches, got {self.batches}; logs: {self.logs}"
        )
        self.pump(SETTLE)
        assert len(self.batches) == n, self.batches
        return self.batches

    def expect_nothing(self, seconds: float = 1.5) -> None:
        self.pump(seconds)
        assert self.changes == [], self.changes
        assert self.batches == []

    def paths(self) -> set[str]:
        return {c.path for c in self.changes}

    def reset(self) -> None:
        self.pump(0.3)
        self.changes.clear()
        self.batches.clear()

    def close(self) -> None:
        for w in self.watchers:
            w.stop()
        self.sel.close()
        os.close(self.r)
        os.close(self.w)


@pytest.fixture
def loop() -> Iterator[Loop]:
    lp = Loop()
    yield lp
    lp.close()
    # watchdog's threads only record; lines reach `log` from the loop's thread
    assert lp.log_threads <= {threading.get_ident()}


@pytest.fixture(autouse=True)
def thread_errors(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """Fail a test whose watchdog threads died of an exception."""
    errors: list[str] = []

    def hook(args: threading.ExceptHookArgs) -> None:
        errors.append(f"{args.thread}: {args.exc_type.__name__}: {args.exc_value}")

    monkeypatch.setattr(threading, "excepthook", hook)
    yield errors
    assert errors == []


def write(path: Path, text: str = "x = 1\n") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def make_app(root: Path) -> Path:
    write(root / "blog.py", "from pkg import views\napp = views.app\n")
    write(root / "pkg" / "__init__.py", "")
    write(root / "pkg" / "views.py", "app = 'blog'\n")
    write(root / "templates" / "index.html", "<p>hi</p>\n")
    return root


def sh(script: str, cwd: Path) -> None:
    subprocess.run(["sh", "-ec", script], cwd=cwd, check=True)


# -- pure path logic ------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "counts"),
    [
        ("blog.py", True),
        ("pkg/a.py", True),
        ("templates/base.html", True),
        ("static/site.css", True),
        ("config.yaml", True),
        ("pkg/__pycache__/a.cpython-311.pyc", False),
        ("__pycache__/x.json", False),
        ("a.pyc", False),
        (".git/config", False),
        (".git/hooks/post-update.py", False),
        ("pkg/.hidden.py", False),
        (".blog.py.swp", False),
        ("blog.py~", False),
        ("4913", False),
        ("pkg/4913", False),
        ("app.log", False),
        ("logs/app.log.1", False),
        ("instance/flaskr.sqlite", False),
        ("instance/flaskr.sqlite-journal", False),
        ("data.db-wal", False),
        ("app.lock", False),
        ("node_modules/x/index.js", False),
        ("README.md", False),  # not in the include list
    ],
)
def test_filter(rel: str, counts: bool) -> None:
    f = PathFilter(DEFAULT_WATCH_INCLUDE, NEVER_WATCHED)
    assert f.counts(rel) is counts


def test_filter_exclude_wins_and_matches_directory_names() -> None:
    f = PathFilter(["*"], ["build"])
    assert f.counts("a/b.txt")
    assert not f.counts("build/lib/a.py")
    assert not f.counts("x/build/a.py")
    assert not f.counts("flaskr.sqlite-wal")  # built in: never code, even with include "*"
    assert PathFilter([], []).counts("anything")


def test_resolve_reports_symlinks_and_missing_parts(tmp_path: Path) -> None:
    app = tmp_path / "srv" / "app"
    (app / "releases" / "1").mkdir(parents=True)
    (app / "current").symlink_to("releases/1")
    real = str(tmp_path.resolve())
    res = resolve(str(app / "current"))
    assert res.target == f"{real}/srv/app/releases/1"
    assert (f"{real}/srv/app", "current") in res.anchors
    assert (f"{real}/srv/app/releases", "1") in res.anchors

    (app / "current").unlink()
    (app / "current").symlink_to("releases/9")
    res = resolve(str(app / "current"))
    assert res.target is None
    assert (f"{real}/srv/app/releases", "9") in res.anchors


# -- edits ---------------------------------------------------------------------


def test_edit_a_py_file_is_one_batch(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    w = loop.watcher([app])
    assert w.backend == "inotify"
    assert w.resolved_targets() == [app.resolve()]
    write(app / "pkg" / "views.py", "app = 'blog 2'\n")
    (batch,) = loop.expect_batches(1)
    assert batch.count == 1
    assert batch.reason == "pkg/views.py changed"
    assert loop.paths() == {str(app.resolve() / "pkg" / "views.py")}


def test_burst_of_2000_files_is_one_batch_after_the_last(tmp_path: Path, loop: Loop) -> None:
    # A quiet window of 1 s: on a loaded 2-core machine the writer can be
    # descheduled for more than the default 0.2 s, which (rightly) splits the
    # burst. What is tested is that every file of the burst lands in one batch.
    loop.debouncer = Debouncer(quiet=1.0, max_wait=60.0)
    app = make_app(tmp_path / "app")
    loop.watcher([app])
    writer = textwrap.dedent(
        """
        import os, sys, time
        root = sys.argv[1]
        for d in range(20):
            os.makedirs(os.path.join(root, "pkg%d" % d), exist_ok=True)
        start = time.monotonic()
        for i in range(2000):
            with open(os.path.join(root, "pkg%d" % (i % 20), "m%d.py" % i), "w") as f:
                f.write("x = %d\\n" % i)
            while time.monotonic() < start + (i + 1) * 0.0005:  # ~1 s in all
                pass
        """
    )
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-c", writer, str(app)])
    assert loop.pump(WAIT, lambda: proc.poll() is not None)
    print(f"writer took {time.monotonic() - started:.2f}s")
    (batch,) = loop.expect_batches(1)
    assert batch.count == 2000
    assert len(loop.paths()) == 2000
    assert str(app.resolve() / "pkg19" / "m1999.py") in loop.paths()
    assert batch.reason.endswith("and 1999 other files changed")


def test_changes_during_a_reload_give_exactly_one_more_batch(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    loop.watcher([app])
    write(app / "blog.py", "app = 1\n")
    loop.expect_batches(1)
    loop.reload_until = time.monotonic() + 2.0  # the loop holds changes until this
    for name in ("a.py", "b.py", "c.py"):
        write(app / name)
        loop.pump(0.5)  # longer than the quiet window: separate batches if taken
    assert len(loop.batches) == 1
    batches = loop.expect_batches(2)
    assert batches[1].count == 3


def test_files_the_app_writes_never_count(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    run = app / "run"  # the supervisor's runtime dir, here inside the tree
    logs = app / "logs"  # logto's directory
    run.mkdir()
    logs.mkdir()
    loop.watcher([app], ignore=[run, logs])
    write(run / "state.json", "{}")  # *.json counts anywhere else
    write(run / "wsgi_entry.py", "")
    write(logs / "uwsgi.log", "started\n")
    write(logs / "notes.txt", "")
    write(app / "app.log", "hello\n")
    write(app / "app.log.1", "")
    write(app / "app.lock", "")
    write(app / "uwsgi.pid", "123")
    write(app / "pkg" / "__pycache__" / "views.cpython-311.pyc", "")
    write(app / "views.pyc", "")
    write(app / ".blog.py.swp", "")
    write(app / "blog.py~", "")
    write(app / "4913", "")
    (app / "4913").unlink()
    write(app / ".git" / "index", "")
    (app / "instance").mkdir()
    for name, wal in (("flaskr.sqlite", False), ("blog.db", True)):
        db = sqlite3.connect(app / "instance" / name)
        if wal:
            db.execute("PRAGMA journal_mode=WAL")
        db.execute("CREATE TABLE IF NOT EXISTS post (id INTEGER PRIMARY KEY, body TEXT)")
        for i in range(20):
            db.execute("INSERT INTO post (body) VALUES (?)", (f"post {i}",))
            db.commit()
        db.close()
    loop.expect_nothing()
    write(app / "blog.py", "app = 2\n")  # the watcher is alive: a real edit counts
    loop.expect_batches(1)
    assert loop.paths() == {str(app.resolve() / "blog.py")}


def test_opening_reading_and_importing_never_count(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    loop.watcher([app])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE",)}
    env.pop("PYTHONPYCACHEPREFIX", None)
    subprocess.run(  # as uWSGI does: import the app (this writes __pycache__)
        [sys.executable, "-c", "import blog"], cwd=app, env=env, check=True
    )
    assert list(app.glob("**/__pycache__/*.pyc"))
    for p in app.rglob("*"):
        if p.is_file():
            p.read_bytes()
            os.stat(p)
        else:
            os.listdir(p)
    loop.expect_nothing()
    write(app / "templates" / "index.html", "<p>new</p>")
    loop.expect_batches(1)


def test_directory_events_do_not_count(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    loop.watcher([app])
    (app / "newpkg" / "sub").mkdir(parents=True)
    os.rename(app / "newpkg" / "sub", app / "newpkg" / "sub2")
    (app / "newpkg" / "sub2").rmdir()
    loop.expect_nothing()
    write(app / "newpkg" / "__init__.py", "")  # a file created inside counts
    loop.expect_batches(1)
    assert loop.paths() == {str(app.resolve() / "newpkg" / "__init__.py")}
    loop.reset()
    outside = make_app(tmp_path / "elsewhere" / "plugin")
    os.rename(outside, app / "plugin")  # a package moved in: its files count
    (batch,) = loop.expect_batches(1)
    assert batch.count == 4


@pytest.mark.parametrize("style", ["rename-over", "vim"])
def test_editor_save_is_one_change(tmp_path: Path, loop: Loop, style: str) -> None:
    app = make_app(tmp_path / "app")
    loop.watcher([app])
    blog = app / "blog.py"
    if style == "rename-over":  # write a temporary file, then rename it over the original
        write(app / ".blog.py.tmp1234", "app = 'saved'\n")
        os.replace(app / ".blog.py.tmp1234", blog)
    else:  # vim's default: probe file, move the original to a backup, write, drop backup
        write(app / "4913", "")
        (app / "4913").unlink()
        os.replace(blog, app / "blog.py~")
        write(blog, "app = 'saved'\n")
        (app / "blog.py~").unlink()
    (batch,) = loop.expect_batches(1)
    assert loop.paths() == {str(blog.resolve())}
    assert batch.count == 1


def test_forced_polling(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    w = loop.watcher([app], poll=True, poll_interval=0.2)
    assert w.backend == "polling"
    loop.expect_nothing(0.6)
    write(app / "pkg" / "views.py", "app = 'polled'\n")
    (batch,) = loop.expect_batches(1)
    assert batch.reason == "pkg/views.py changed"


# -- symlink deploys ------------------------------------------------------------


def make_release(app_root: Path, n: int) -> Path:
    return make_app(app_root / "releases" / str(n))


@pytest.mark.parametrize("poll", [False, True], ids=["inotify", "polling"])
def test_symlink_flip(tmp_path: Path, loop: Loop, poll: bool) -> None:
    root = tmp_path / "srv" / "app"
    r1 = make_release(root, 1)
    (root / "current").symlink_to("releases/1")
    w = loop.watcher([root / "current"], poll=poll, poll_interval=0.2)
    assert w.resolved_targets() == [r1.resolve()]

    write(r1 / "blog.py", "app = 'r1 edit'\n")  # the live release: counts
    loop.expect_batches(1)
    loop.reset()

    r2 = make_release(root, 2)  # writing the next release: not live yet
    loop.expect_nothing()
    sh("ln -s releases/2 current.tmp && mv -T current.tmp current", cwd=root)
    (batch,) = loop.expect_batches(1)
    assert batch.release == str(r2.resolve())
    assert batch.reason == f"release flipped to {r2.resolve()}"
    assert w.resolved_targets() == [r2.resolve()]
    loop.reset()

    write(r1 / "blog.py", "app = 'old release'\n")  # no longer live
    loop.expect_nothing()
    write(r2 / "pkg" / "views.py", "app = 'r2 edit'\n")
    loop.expect_batches(1)
    assert loop.paths() == {str(r2.resolve() / "pkg" / "views.py")}
    loop.reset()

    shutil.rmtree(r1)  # Capistrano's cleanup of old releases
    loop.expect_nothing()
    write(r2 / "blog.py", "app = 'still watching'\n")
    loop.expect_batches(1)
    assert not [line for line in loop.logs if "error" in line.lower()], loop.logs


def test_current_missing_for_a_moment_and_dangling(tmp_path: Path, loop: Loop) -> None:
    root = tmp_path / "srv" / "app"
    make_release(root, 1)
    r2 = make_release(root, 2)
    (root / "current").symlink_to("releases/1")
    w = loop.watcher([root / "current"])

    (root / "current").unlink()  # a non-atomic deploy: rm, then ln
    loop.pump(0.3)
    (root / "current").symlink_to("releases/2")
    (batch,) = loop.expect_batches(1)
    assert batch.release == str(r2.resolve())
    loop.reset()

    # `current` first points at a release that does not exist yet
    sh("ln -s releases/3 current.tmp && mv -T current.tmp current", cwd=root)
    loop.pump(0.5)
    r3 = make_release(root, 3)
    batches = loop.expect_batches(1)
    assert batches[0].release == str(r3.resolve())
    assert w.resolved_targets() == [r3.resolve()]
    loop.reset()
    write(r3 / "blog.py", "app = 3\n")
    loop.expect_batches(1)
    assert loop.paths() == {str(r3.resolve() / "blog.py")}


def test_flip_of_a_parent_symlink(tmp_path: Path, loop: Loop) -> None:
    # /srv/app -> app-blue, and each colour has its own `current`
    srv = tmp_path / "srv"
    for colour in ("blue", "green"):
        make_release(srv / f"app-{colour}", 1)
        (srv / f"app-{colour}" / "current").symlink_to("releases/1")
    (srv / "app").symlink_to("app-blue")
    w = loop.watcher([srv / "app" / "current"])
    green = (srv / "app-green" / "releases" / "1").resolve()
    sh("ln -s app-green app.tmp && mv -T app.tmp app", cwd=srv)
    (batch,) = loop.expect_batches(1)
    assert batch.release == str(green)
    assert w.resolved_targets() == [green]
    loop.reset()
    write(srv / "app-blue" / "releases" / "1" / "blog.py", "app = 'blue'\n")
    loop.expect_nothing()
    write(green / "blog.py", "app = 'green'\n")
    loop.expect_batches(1)


def test_watched_directory_deleted_then_recreated(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    w = loop.watcher([app])
    shutil.rmtree(app)
    loop.pump(0.5)
    make_app(app)
    loop.pump(1.0)
    assert loop.batches  # the deletion and the new tree call for a reload
    loop.reset()
    assert w.resolved_targets() == [app.resolve()]
    write(app / "pkg" / "views.py", "app = 'again'\n")
    loop.expect_batches(1)
    assert loop.paths() == {str(app.resolve() / "pkg" / "views.py")}


def test_watched_directory_swapped_by_rename(tmp_path: Path, loop: Loop) -> None:
    app = make_app(tmp_path / "app")
    new = make_app(tmp_path / "app.new")
    w = loop.watcher([app])
    os.rename(app, tmp_path / "app.old")
    os.rename(new, app)
    batches = loop.expect_batches(1)
    assert batches[0].release == str(app.resolve())
    loop.reset()
    write(tmp_path / "app.old" / "blog.py", "app = 'old'\n")
    loop.expect_nothing()
    write(app / "blog.py", "app = 'new'\n")
    loop.expect_batches(1)
    assert w.resolved_targets() == [app.resolve()]


# -- inotify limits ---------------------------------------------------------------

LIMIT_CHILD = textwrap.dedent(
    """
    import json, os, select, sys, time
    from pathlib import Path
    from supervisor.spec.model import NEVER_WATCHED, DEFAULT_WATCH_INCLUDE
    from supervisor.codepush.watcher import CodeWatcher

    tree = Path(sys.argv[1])
    r, w = os.pipe()
    logs = []
    watcher = CodeWatcher([tree], DEFAULT_WATCH_INCLUDE, NEVER_WATCHED, [], False,
                          lambda: os.write(w, b"x"), logs.append, poll_interval=0.2)
    watcher.start()
    backend = watcher.backend
    (tree / "d77" / "late.py").write_text("x = 1\\n")  # deep: a dir inotify could not watch
    changes = []
    end = time.monotonic() + 15
    while not changes and time.monotonic() < end:
        select.select([r], [], [], 0.2)
        changes += [c.path for c in watcher.drain()]
    watcher.stop()
    print(json.dumps({"backend": backend, "logs": logs, "changes": changes}))
    """
)


def run_limited(tmp_path: Path, setting: str, value: int) -> dict[str, Any]:
    tree = tmp_path / "tree"
    for i in range(100):
        write(tree / f"d{i}" / "m.py")
    script = tmp_path / "child.py"
    script.write_text(LIMIT_CHILD)
    shell = f'echo {value} > /proc/sys/user/{setting} && exec "$0" "$@"'
    proc = subprocess.run(
        ["unshare", "--user", "--map-root-user", "sh", "-c", shell]
        + [sys.executable, str(script), str(tree)],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    assert proc.returncode == 0, proc.stderr
    result: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def userns_limits_work() -> bool:
    try:
        proc = subprocess.run(
            [
                "unshare",
                "--user",
                "--map-root-user",
                "sh",
                "-c",
                "echo 50 > /proc/sys/user/max_inotify_watches",
            ],
            capture_output=True,
            timeout=10,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return proc.returncode == 0


needs_userns = pytest.mark.skipif(
    not userns_limits_work(), reason="cannot lower inotify limits in a user namespace here"
)


@needs_userns
def test_watch_limit_falls_back_to_polling(tmp_path: Path) -> None:
    # 100 directories, 40 watches allowed in this user namespace only
    out = run_limited(tmp_path, "max_inotify_watches", 40)
    assert out["backend"] == "polling", out
    limit_lines = [line for line in out["logs"] if "max_user_watches" in line]
    assert len(limit_lines) == 1, out["logs"]
    line = limit_lines[0]
    assert "inotify watch limit reached" in line
    assert "sysctl -w fs.inotify.max_user_watches=524288" in line
    assert "/etc/sysctl.d/" in line
    assert out["changes"] == [str((tmp_path / "tree" / "d77" / "late.py").resolve())]


@needs_userns
def test_instance_limit_falls_back_to_polling(tmp_path: Path) -> None:
    out = run_limited(tmp_path, "max_inotify_instances", 0)
    assert out["backend"] == "polling", out
    (line,) = out["logs"]
    assert "fs.inotify.max_user_instances" in line
    assert "sysctl -w fs.inotify.max_user_instances=" in line
    assert out["changes"]


@needs_userns
def test_generous_limit_keeps_inotify(tmp_path: Path) -> None:
    out = run_limited(tmp_path, "max_inotify_watches", 1000)
    assert out["backend"] == "inotify", out
    assert out["logs"] == []
    assert out["changes"]


class FullInotify(PollingObserver):
    """Stands in for an inotify observer whose user has no watches left."""

    def schedule(self, *args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSPC, "inotify watch limit reached")


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EMFILE])
def test_limit_fallback_with_injected_observer(tmp_path: Path, loop: Loop, err: int) -> None:
    def factory() -> BaseObserver:
        if err == errno.EMFILE:
            raise OSError(errno.EMFILE, "inotify instance limit reached")
        return FullInotify()

    app = make_app(tmp_path / "app")
    w = loop.watcher([app], observer_factory=factory, poll_interval=0.2)
    assert w.backend == "polling"
    (line,) = loop.logs
    key = "max_user_watches" if err == errno.ENOSPC else "max_user_instances"
    assert f"sysctl -w fs.inotify.{key}=" in line
    write(app / "blog.py", "app = 'polled'\n")
    loop.expect_batches(1)


# -- scale ------------------------------------------------------------------------


def test_arming_on_10000_files(tmp_path: Path, loop: Loop) -> None:
    app = tmp_path / "big"
    for d in range(200):
        sub = app / f"pkg{d // 20}" / f"mod{d}"
        sub.mkdir(parents=True)
        for i in range(50):
            (sub / f"m{i}.py").write_text("")
    started = time.monotonic()
    w = loop.watcher([app])
    took = time.monotonic() - started
    print(f"armed inotify on 10,000 files / 211 dirs in {took:.3f}s")
    assert w.backend == "inotify"
    write(app / "pkg9" / "mod199" / "m49.py", "x = 1\n")
    loop.expect_batches(1)
    assert took < 30


def test_a_dead_watcher_thread_is_re_armed(tmp_path: Path, loop: Loop) -> None:
    """Auto-reload must not stop silently if watchdog's thread dies."""
    app = make_app(tmp_path / "app")
    w = loop.watcher([app])
    observer = w._observer
    assert observer is not None
    observer.stop()  # as if it died: the loop was not asked to stop watching
    observer.join()
    loop.pump(0.3)
    assert any("ended unexpectedly; re-arming" in line for line in loop.logs), loop.logs
    write(app / "pkg" / "views.py", "app = 'blog 3'\n")
    (batch,) = loop.expect_batches(1)
    assert batch.reason == "pkg/views.py changed"
