"""Debouncer: exact deadlines with a fake clock (plain numbers), no sleeping."""

from __future__ import annotations

import pytest

from supervisor.codepush.debounce import Change, Debouncer


def mod(name: str) -> Change:
    return Change(path=f"/srv/app/{name}", kind="modified", rel=name)


def test_nothing_pending() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    assert d.deadline() is None
    assert not d.due(1e9)
    assert not d.pending
    with pytest.raises(LookupError):
        d.take()


def test_empty_add_changes_nothing() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    d.add(10.0, [])
    assert d.deadline() is None
    d.add(10.0, [mod("a.py")])
    d.add(10.15, [])  # a wake-up with nothing that counts must not extend the window
    assert d.deadline() == pytest.approx(10.2)


def test_quiet_window_after_last_change() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    d.add(100.0, [mod("blog.py")])
    assert d.deadline() == pytest.approx(100.2)
    assert not d.due(100.19)
    d.add(100.1, [mod("auth.py")])
    assert d.deadline() == pytest.approx(100.3)
    assert not d.due(100.29)
    assert d.due(100.3)
    batch = d.take()
    assert batch.count == 2
    assert batch.first == mod("blog.py")
    assert batch.sample == ("/srv/app/blog.py", "/srv/app/auth.py")
    assert (batch.first_at, batch.last_at) == (100.0, 100.1)
    assert batch.reason == "blog.py and 1 other file changed"
    assert d.deadline() is None


def test_max_wait_caps_a_never_ending_stream() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    t = 50.0
    d.add(t, [mod("f0.py")])
    for i in range(1, 20):  # a change every 0.15 s keeps the quiet window open
        t = 50.0 + 0.15 * i
        d.add(t, [mod(f"f{i}.py")])
        if t < 51.8:
            assert d.deadline() == pytest.approx(t + 0.2)
        else:
            assert d.deadline() == pytest.approx(52.0)
    assert not d.due(51.99)
    assert d.due(52.0)
    batch = d.take()
    assert batch.count == 20
    assert batch.reason == "f0.py and 19 other files changed"


def test_burst_of_2000_files_is_one_batch() -> None:
    d = Debouncer(quiet=0.2, max_wait=1e6)
    batches = []
    now = 0.0
    for i in range(2000):
        now = i * 0.0005  # 2,000 files over one second
        d.add(now, [mod(f"pkg/m{i}.py")])
        if d.due(now):
            batches.append(d.take())
    assert not batches
    assert not d.due(now + 0.199)
    assert d.due(now + 0.2)
    batch = d.take()
    assert batch.count == 2000
    assert batch.reason == "pkg/m0.py and 1999 other files changed"


def test_same_path_counts_once_and_keeps_latest_kind() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    d.add(1.0, [mod("blog.py"), mod("blog.py")])
    d.add(1.1, [Change("/srv/app/blog.py", "deleted", "blog.py")])
    batch = d.take()
    assert batch.count == 1
    assert batch.reason == "blog.py deleted"


def test_release_names_the_new_target() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    d.add(1.0, [Change("/srv/app/releases/2", "release")])
    batch = d.take()
    assert batch.release == "/srv/app/releases/2"
    assert batch.reason == "release flipped to /srv/app/releases/2"

    d.add(2.0, [mod("blog.py"), Change("/srv/app/releases/3", "release")])
    batch = d.take()
    assert batch.count == 2
    assert batch.reason == "release flipped to /srv/app/releases/3 and 1 other file changed"


def test_changes_during_a_reload_give_exactly_one_more_batch() -> None:
    d = Debouncer(quiet=0.2, max_wait=2.0)
    d.add(0.0, [mod("blog.py")])
    assert d.due(0.2)
    first = d.take()
    reload_done_at = 5.0
    # The loop keeps feeding add() while the reload runs, but does not take().
    for t in (0.5, 1.0, 1.6, 3.0, 4.9):
        d.add(t, [mod(f"during_{t}.py")])
    assert d.deadline() == pytest.approx(2.5)  # max_wait from 0.5 passed long ago
    assert d.due(reload_done_at)
    second = d.take()
    assert second.count == 5
    assert second.first_at == 0.5
    assert first.count == 1
    assert not d.pending
    assert not d.due(reload_done_at + 100)


def test_quiet_zero_is_due_at_once() -> None:
    d = Debouncer(quiet=0.0, max_wait=2.0)
    d.add(3.0, [mod("a.py")])
    assert d.due(3.0)


def test_max_wait_shorter_than_quiet() -> None:
    d = Debouncer(quiet=1.0, max_wait=0.5)
    d.add(3.0, [mod("a.py")])
    assert d.deadline() == pytest.approx(3.5)


@pytest.mark.parametrize(("quiet", "max_wait"), [(-0.1, 1.0), (0.2, 0.0)])
def test_rejects_bad_windows(quiet: float, max_wait: float) -> None:
    with pytest.raises(ValueError):
        Debouncer(quiet=quiet, max_wait=max_wait)
