"""Scenario 4b: bad deploys, pushes that import fine and fail on request.

The kinds an import check cannot catch (frameworks load most of their code
on the first request): an index view that raises, and code that passes a
first request and fails every one from 2 s after it loaded (a pool that
runs dry, a cache that expires). Each is pushed under `wrk -t2 -c32`
through nginx; for each contender: the requests wrk sent and the ones
that failed in the window after the push, whether the site answers 200
after it, and when the last failure was (seen by a light second client
that times each request).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from bench.common import make_app, remove, scratch
from bench.config import Settings
from bench.contenders import make, mtime_spacing, served
from tests.kit import wrk
from tests.kit.load import Load
from tests.kit.net import try_get

CONTENDERS = ["ours: swap", "ours: graceful", "py-autoreload", "touch-reload", "inotify+r"]
QUICK_CONTENDERS = ["ours: swap", "inotify+r"]
INDEX = '    return f"{VERSION} pid={os.getpid()}\\n"'

LATE = '''

_LOADED = time.monotonic()


@app.before_request
def _fails_two_seconds_after_loading():
    if time.monotonic() - _LOADED > 2.0:
        raise RuntimeError("the connection pool is exhausted")
'''


def _raises(app: Path) -> None:
    text = app.read_text()
    assert INDEX in text, "the benchmark app's index view changed"
    app.write_text(text.replace(INDEX, '    raise RuntimeError("the database is gone")'))


def _late(app: Path) -> None:
    app.write_text(app.read_text() + LATE)


KINDS: dict[str, Callable[[Path], None]] = {
    "500 on every request": _raises,
    "fails 2 s after loading": _late,
}


def run(cfg: Settings, log: Any) -> list[dict[str, Any]]:
    rows = []
    contenders = QUICK_CONTENDERS if cfg.quick else CONTENDERS
    kinds = list(KINDS)[:1] if cfg.quick else list(KINDS)
    for name in contenders:
        for kind in kinds:
            tmp = scratch("bad")
            app = make_app(tmp / "app")
            c = make(name, tmp, tmp / "app")
            try:
                with served(c, tmp) as nginx, Load(nginx.port, threads=1, pause=0.02) as load:
                    spacing = mtime_spacing(c)
                    hammer = wrk.start(nginx.port, int(spacing + cfg.bad_window + 1))
                    time.sleep(spacing + 0.5)
                    t0 = time.monotonic()
                    KINDS[kind](app)
                    c.after_save()
                    time.sleep(cfg.bad_window)
                    t1 = time.monotonic()
                    got = try_get(nginx.address, timeout=10.0)
                    r = wrk.finish(hammer, cfg.bad_window + 60)
                    failed, total = r["failed"], r["requests"]
                    last = load.last_failure_between(t0, t1)
                    still = got is not None and got[0] == 200
                recovered = round(last - t0, 2) if still and last is not None else None
                rows.append(
                    {
                        "contender": name,
                        "kind": kind,
                        "failed": failed,
                        "requests": total,
                        "serving_after": still,
                        "last_failure_s": recovered,
                    }
                )
                log(
                    f"bad deploy {name:15} {kind:24}: {failed} of {total} failed; "
                    f"{'serving' if still else 'site down'} after {cfg.bad_window:g} s"
                )
            finally:
                remove(tmp)
    return rows
