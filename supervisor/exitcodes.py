"""The supervisor's exit codes, and the uWSGI exit codes it interprets.

sysexits(3) values where they fit, so a unit's `RestartPreventExitStatus=`
can name them. Imports nothing: every layer may use it.
"""

from __future__ import annotations

import enum


class Exit(enum.IntEnum):
    OK = 0
    USAGE = 2  # argparse: bad command line
    NOT_RUNNING = 3  # `status`: uWSGI does not answer (LSB's "program is not running")
    STATUS_UNKNOWN = 4  # `status`: uWSGI's processes exist, its master does not answer (LSB)
    UNAVAILABLE = 69  # EX_UNAVAILABLE: gave up after restart.max_attempts, or no master to reload
    SOFTWARE = 70  # EX_SOFTWARE: a bug of ours; systemd restarts us into a clean state
    CANTCREAT = 73  # EX_CANTCREAT: the runtime dir is unsafe (another user's) or cannot be made
    TEMPFAIL = 75  # EX_TEMPFAIL: another supervisor holds the app, or a reload still runs
    CONFIG = 78  # EX_CONFIG: a bad spec; the unit's RestartPreventExitStatus
    INTERRUPTED = 130  # Ctrl-C at a command


# uWSGI's own exit status with `need-app` when the app failed to load.
UWSGI_NO_APP = 22
