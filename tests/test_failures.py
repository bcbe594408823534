"""One line that says why uWSGI failed, from the tail of its log.

The logs below are uWSGI 2.0.31's own output (Python 3.11) for a copy of
tests/apps/blog broken in each way, with its paths moved to /srv/blog.
"""

from __future__ import annotations

from pathlib import Path

from supervisor.uwsgi.failures import MAX_LENGTH, summarize_failure

STARTUP = """\
*** Starting uWSGI 2.0.31 (64bit) on [Mon Nov 30 06:38:16 2026] ***
compiled with version: 12.2.0 on 30 November 2026 06:18:54
detected number of CPU cores: 2
current working directory: /
detected binary path: /usr/bin/uwsgi
!!! no internal routing support, rebuild with pcre support !!!
chdir() to /srv/blog
your processes number limit is 96364
your memory page size is 4096 bytes
detected max file descriptor number: 20000
lock engine: pthread robust mutexes
thunder lock: disabled (you can enable it with --thunder-lock)
uwsgi socket 0 bound to UNIX address /run/blog/app.sock fd 3
Python version: 3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]
Python main interpreter initialized at 0x7f204ef76ef8
python threads support enabled
your server socket listen backlog is limited to 100 connections
your mercy for graceful operations on workers is 60 seconds
mapped 304776 bytes (297 KB) for 2 cores
*** Operational MODE: preforking ***
added /srv/blog/ to pythonpath.
"""

# From the entry shim through importlib into the app.
SHIM_FRAMES = """\
Traceback (most recent call last):
  File "/run/blog/wsgi_entry.py", line 5, in <module>
    _module = importlib.import_module('blog')
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
  File "<frozen importlib._bootstrap>", line 1147, in _find_and_load_unlocked
  File "<frozen importlib._bootstrap>", line 690, in _load_unlocked
  File "<frozen importlib._bootstrap_external>", line 940, in exec_module
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
"""

GAME_OVER = """\
unable to load app 0 (mountpoint='') (callable not found or import error)
*** no app loaded. GAME OVER ***
"""

MISSING_MODULE = (
    STARTUP
    + SHIM_FRAMES
    + """\
  File "/srv/blog/blog.py", line 1, in <module>
    import x
ModuleNotFoundError: No module named 'x'
"""
    + GAME_OVER
)

SYNTAX_ERROR = (
    STARTUP
    + """\
Traceback (most recent call last):
  File "/run/blog/wsgi_entry.py", line 5, in <module>
    _module = importlib.import_module('blog')
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
  File "<frozen importlib._bootstrap>", line 1147, in _find_and_load_unlocked
  File "<frozen importlib._bootstrap>", line 690, in _load_unlocked
  File "<frozen importlib._bootstrap_external>", line 936, in exec_module
  File "<frozen importlib._bootstrap_external>", line 1074, in get_code
  File "<frozen importlib._bootstrap_external>", line 1004, in source_to_code
  File "<frozen importlib._bootstrap>", line 241, in _call_with_frames_removed
  File "/srv/blog/blog.py", line 3
    def broken(:
               ^
SyntaxError: invalid syntax
"""
    + GAME_OVER
)

CHAINED = (
    STARTUP
    + """\
Traceback (most recent call last):
  File "/srv/blog/blog.py", line 3, in <module>
    import flask_login
ModuleNotFoundError: No module named 'flask_login'

The above exception was the direct cause of the following exception:

"""
    + SHIM_FRAMES
    + """\
  File "/srv/blog/blog.py", line 5, in <module>
    raise RuntimeError("blog needs flask_login: pip install flask-login") from exc
RuntimeError: blog needs flask_login: pip install flask-login
"""
    + GAME_OVER
)

# The app's module name mistyped in the spec: no frame is the app's own.
WRONG_MODULE = (
    STARTUP
    + """\
Traceback (most recent call last):
  File "/run/blog/wsgi_entry.py", line 5, in <module>
    _module = importlib.import_module('blgo')
              ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/importlib/__init__.py", line 126, in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "<frozen importlib._bootstrap>", line 1204, in _gcd_import
  File "<frozen importlib._bootstrap>", line 1176, in _find_and_load
  File "<frozen importlib._bootstrap>", line 1140, in _find_and_load_unlocked
ModuleNotFoundError: No module named 'blgo'
"""
    + GAME_OVER
)

# The app calls into the standard library, which raises.
LIBRARY_RAISES = (
    STARTUP
    + SHIM_FRAMES
    + """\
  File "/srv/blog/blog.py", line 3, in <module>
    CONFIG = json.loads("{")
             ^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/__init__.py", line 346, in loads
    return _default_decoder.decode(s)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/usr/lib/python3.11/json/decoder.py", line 353, in raw_decode
    obj, end = self.scan_once(s, idx)
               ^^^^^^^^^^^^^^^^^^^^^^
json.decoder.JSONDecodeError: Expecting property name enclosed in double quotes: line 1 column 2 (char 1)
"""  # noqa: E501
    + GAME_OVER
)

ADDRESS_IN_USE = """\
*** Starting uWSGI 2.0.31 (64bit) on [Mon Nov 30 06:38:26 2026] ***
compiled with version: 12.2.0 on 30 November 2026 06:18:54
detected binary path: /usr/bin/uwsgi
!!! no internal routing support, rebuild with pcre support !!!
chdir() to /srv/blog
your processes number limit is 96364
your memory page size is 4096 bytes
detected max file descriptor number: 20000
lock engine: pthread robust mutexes
thunder lock: disabled (you can enable it with --thunder-lock)
probably another instance of uWSGI is running on the same address (127.0.0.1:8001).
bind(): Address already in use [core/socket.c line 769]
"""

HEALTHY_THEN_STOPPED = (
    STARTUP
    + """\
WSGI app 0 (mountpoint='') ready in 1 seconds on interpreter 0x7f21f8576ef8 pid: 16149 (default app)
*** uWSGI is running in multiple interpreter mode ***
spawned uWSGI master process (pid: 16149)
spawned uWSGI worker 1 (pid: 16150, cores: 1)
spawned uWSGI worker 2 (pid: 16151, cores: 1)
*** Stats server enabled on /run/blog/stats-1.sock fd: 12 ***
Mon Nov 30 06:38:34 2026 - graceful shutdown triggered...
Gracefully killing worker 1 (pid: 16150)...
Gracefully killing worker 2 (pid: 16151)...
goodbye to uWSGI.
"""
)

BLOG = Path("/srv/blog")


def summary(log: str, chdir: Path | None = BLOG) -> str | None:
    return summarize_failure(log.splitlines(), chdir)


def test_import_error_through_the_entry_shim_names_the_apps_line() -> None:
    assert summary(MISSING_MODULE) == "ModuleNotFoundError in blog.py line 1: No module named 'x'"


def test_syntax_error_frame_without_a_function_name() -> None:
    assert summary(SYNTAX_ERROR) == "SyntaxError in blog.py line 3: invalid syntax"


def test_a_chained_traceback_is_summarized_by_its_last_exception() -> None:
    assert summary(CHAINED) == (
        "RuntimeError in blog.py line 5: blog needs flask_login: pip install flask-login"
    )


def test_the_location_is_the_deepest_frame_in_the_apps_own_code() -> None:
    assert summary(LIBRARY_RAISES) == (
        "json.decoder.JSONDecodeError in blog.py line 3:"
        " Expecting property name enclosed in double quotes: line 1 column 2 (char 1)"
    )


def test_frames_outside_chdir_give_no_location() -> None:
    assert summary(WRONG_MODULE) == "ModuleNotFoundError: No module named 'blgo'"
    # Another directory is not the app's, even if its name starts the same way.
    assert summary(MISSING_MODULE, Path("/srv/blo")) == "ModuleNotFoundError: No module named 'x'"
    assert summary(MISSING_MODULE, None) == "ModuleNotFoundError: No module named 'x'"


def test_a_subdirectory_of_the_app_is_named_relative_to_chdir() -> None:
    log = MISSING_MODULE.replace("/srv/blog/blog.py", "/srv/blog/blog/views/admin.py")
    assert summary(log) == (
        "ModuleNotFoundError in blog/views/admin.py line 1: No module named 'x'"
    )


def test_chdir_through_a_symlink_finds_frames_by_either_path(tmp_path: Path) -> None:
    """Deploys flip `current` to a release; tracebacks may show either path."""
    release = tmp_path / "releases" / "2"
    release.mkdir(parents=True)
    current = tmp_path / "current"
    current.symlink_to(release)
    for shown in (release, current):
        log = MISSING_MODULE.replace("/srv/blog/", f"{shown}/")
        assert summary(log, current) == (
            "ModuleNotFoundError in blog.py line 1: No module named 'x'"
        ), shown


def test_a_chdir_removed_by_a_deploy_still_matches_by_its_name(tmp_path: Path) -> None:
    gone = tmp_path / "releases" / "1"
    log = MISSING_MODULE.replace("/srv/blog/", f"{gone}/")
    assert summary(log, gone) == "ModuleNotFoundError in blog.py line 1: No module named 'x'"


def test_without_a_traceback_a_line_naming_an_error() -> None:
    # What the controller records when uWSGI's binary cannot be executed.
    tail = ["OSError: cannot start /usr/bin/uwsgi: No such file or directory"]
    assert summary("\n".join(tail)) == (
        "OSError: cannot start /usr/bin/uwsgi: No such file or directory"
    )


def test_uwsgis_own_words_for_trouble() -> None:
    assert summary(ADDRESS_IN_USE) == "bind(): Address already in use [core/socket.c line 769]"


def test_a_log_that_tells_nothing_gives_none() -> None:
    assert summary(HEALTHY_THEN_STOPPED) is None
    assert summary("") is None


def test_the_summary_is_capped() -> None:
    long = "x" * 1000
    log = MISSING_MODULE.replace("No module named 'x'", f"No module named '{long}'")
    result = summary(log)
    assert result is not None and len(result) == MAX_LENGTH == 240
    assert result.startswith("ModuleNotFoundError in blog.py line 1: No module named 'xxx")
    error_line = summary(f"OSError: cannot start {long}")
    assert error_line is not None and len(error_line) == MAX_LENGTH
    hint = summary(f"bind(): Address already in use {long}")
    assert hint is not None and len(hint) == MAX_LENGTH


# Three workers failing at once, from uWSGI 2.0.31's log (an app that raises
# on every request, 120 requests from 12 clients): each worker writes a line
# at a time, so other workers' lines land inside a traceback.
FRAMES = """\
Traceback (most recent call last):
  File "/srv/blog/blog.py", line 6, in application
    return middle()
           ^^^^^^^^
  File "/srv/blog/blog.py", line 4, in middle
    return inner()
           ^^^^^^^
  File "/srv/blog/blog.py", line 2, in inner
"""
RAISE = '    raise RuntimeError("the database is gone")\n'
ERROR = "RuntimeError: the database is gone\n"
REQUEST = (
    "[pid: 16615|app: 0|req: 19/50] 127.0.0.1 () {18 vars in 170 bytes}"
    " [Mon Nov 30 18:59:16 2026] GET / => generated 0 bytes in 0 msecs (HTTP/1.0 500)"
    " 0 headers in 0 bytes (0 switches on core 0)\n"
)
IN_BLOG = "RuntimeError in blog.py line 2: the database is gone"


def test_another_workers_request_line_inside_a_traceback_is_passed_over() -> None:
    lines = FRAMES.splitlines(keepends=True)
    log = "".join(lines[:2]) + REQUEST + "".join(lines[2:]) + RAISE + ERROR
    assert summary(STARTUP + log) == IN_BLOG


def test_another_workers_traceback_begun_inside_one_is_passed_over() -> None:
    # Worker B's whole traceback lands between worker A's last frame and A's
    # end; then A's end comes.
    log = STARTUP + FRAMES + FRAMES + RAISE + ERROR + RAISE + ERROR
    assert summary(log) == IN_BLOG
    # B's header alone before A's end: A's error line has no frame of B's
    # before it, so B's traceback is taken as unfinished and A's is used.
    log = STARTUP + FRAMES + RAISE + "Traceback (most recent call last):\n" + ERROR
    assert summary(log) == IN_BLOG


def test_a_traceback_still_being_written_gives_way_to_the_complete_one_before() -> None:
    log = STARTUP + FRAMES + RAISE + ERROR + REQUEST + FRAMES  # the last has no end yet
    assert summary(log) == IN_BLOG


def test_an_exception_line_needs_a_frame_before_it() -> None:
    # A header, then an exception line with no frame between: not a traceback
    # Python printed whole, so the summary falls back to the line naming an error.
    log = STARTUP + "Traceback (most recent call last):\n" + ERROR
    assert summary(log) == "RuntimeError: the database is gone"
