"""Issue: code-push auto-reload that never serves broken or half-pushed code.

Real supervisor, real uWSGI, real inotify; nginx in front for the load tests.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import pytest
from harness import Supervised, copy_app, spec_yaml
from kit.app import set_version
from kit.load import Load
from kit.net import free_port, http_get, serves
from kit.wait import wait_until

from supervisor.render import render_nginx
from supervisor.spec.load import load_spec


def reloads(sup: Supervised) -> int:
    """Reloads begun, as the supervisor logged them."""
    return sum(1 for line in sup.log().splitlines() if "running -> reloading" in line)


def start_blog(
    short_tmp: Path, extra: str = "", chdir: Path | None = None
) -> tuple[Supervised, int]:
    app = chdir or copy_app("blog", short_tmp / "app")
    port = free_port()
    sup = Supervised(short_tmp, spec_yaml(app, short_tmp / "rt", "blog:app", port, extra))
    sup.start()
    return sup, port


def test_edit_a_view_serves_new_code_and_status_names_the_file(short_tmp: Path) -> None:
    sup, port = start_blog(short_tmp)
    with sup:
        generation = sup.state()["generation"]
        set_version(short_tmp / "app" / "blog.py", "v2")
        wait_until(lambda: serves(port, "v2"), 30, "v2 served")
        state = sup.wait_state("running")
        assert state["generation"] == generation + 1
        assert state["last_reload"]["reason"] == "blog.py changed"
        status = sup.cli("status", str(sup.spec)).stdout
        assert f"generation {generation + 1}" in status and "blog.py changed" in status
        assert reloads(sup) == 1


def test_a_checkout_of_2000_files_gives_exactly_one_reload(short_tmp: Path) -> None:
    # max_wait caps how long a stream of writes may defer the reload: on a
    # loaded 2-core machine writing 2,000 files can outlast the 2 s default,
    # which then (rightly) reloads twice. The property tested is the batching.
    sup, port = start_blog(short_tmp, "watch:\n  debounce: 500ms\n  max_wait: 30s\n")
    with sup:
        pkg = short_tmp / "app" / "pkg"
        pkg.mkdir()
        for i in range(2000):  # as `git checkout` does: a stream of writes, not one
            (pkg / f"mod_{i}.py").write_text(f"N = {i}\n")
            if i % 200 == 0:
                time.sleep(0.02)
        set_version(short_tmp / "app" / "blog.py", "v2")
        wait_until(lambda: serves(port, "v2"), 30, "v2 served")
        time.sleep(2.0)  # any straggling reload would have started by now
        assert reloads(sup) == 1, sup.log()[-3000:]
        assert "and 2000 other files" in sup.state()["last_reload"]["reason"]


def test_changes_during_a_reload_give_exactly_one_more(short_tmp: Path) -> None:
    app = copy_app("blog", short_tmp / "app")
    blog = app / "blog.py"
    blog.write_text(
        "import time\ntime.sleep(1.0)  # a slow import makes reloads last\n" + blog.read_text()
    )
    sup, port = start_blog(short_tmp, chdir=app)
    with sup:
        set_version(blog, "v2")
        sup.wait_state("reloading")
        for i in range(5):
            (app / f"extra_{i}.py").write_text("X = 1\n")
            time.sleep(0.05)
        set_version(blog, "v3")
        wait_until(lambda: serves(port, "v3"), 60, "v3 served")
        time.sleep(2.5)
        assert reloads(sup) == 2, sup.log()[-3000:]


def test_files_the_app_writes_never_trigger_a_reload(short_tmp: Path) -> None:
    sup, port = start_blog(short_tmp)
    with sup:
        for _ in range(3):
            assert http_get(f"127.0.0.1:{port}", "/write") == (200, "written\n")
        app = short_tmp / "app"
        assert (app / "app.log").exists() and (app / "data.sqlite").exists()
        assert (app / "blog.pyc").exists() and (app / "__pycache__").is_dir()
        (app / "blog.py").read_text()  # reading is no change either
        time.sleep(2.0)
        assert reloads(sup) == 0, sup.log()[-2000:]


def make_releases(root: Path) -> Path:
    releases = root / "releases"
    copy_app("blog", releases / "1")
    os.symlink("releases/1", root / "current")
    return root / "current"


def flip(root: Path, release: str) -> None:
    """Capistrano's atomic symlink flip."""
    tmp = root / "current.tmp"
    os.symlink(f"releases/{release}", tmp)
    os.replace(tmp, root / "current")


@pytest.mark.parametrize("mode", ["graceful", "chain", "swap"])
def test_symlink_flip_serves_the_new_release(short_tmp: Path, mode: str) -> None:
    root = short_tmp / "site"
    current = make_releases(root)
    sup, port = start_blog(short_tmp, f"watch:\n  reload: {mode}\n", chdir=current)
    with sup:
        assert serves(port, "v1")
        new = copy_app("blog", root / "releases" / "2")
        set_version(new / "blog.py", "v2")
        flip(root, "2")
        wait_until(
            lambda: sup.state().get("generation") == 2 and sup.state().get("state") == "running",
            40,
            f"the reload onto release 2 ({mode})",
        )
        # (with swap, the retiring master answers on the shared development
        # HTTP port until it has drained and quit)
        wait_until(lambda: serves(port, "v2", times=8), 20, f"only release 2 served ({mode})")
        count = reloads(sup)
        shutil.rmtree(root / "releases" / "1")  # the old release is cleaned up later
        time.sleep(2.0)
        assert serves(port, "v2")
        assert reloads(sup) == count
        assert "Traceback" not in sup.log()
        # Edits inside the new release are picked up too, after the old
        # release is gone: new workers must not trip over its absence.
        set_version(new / "blog.py", "v3")
        wait_until(
            lambda: sup.state().get("generation") == 3 and sup.state().get("state") == "running",
            40,
            f"the reload after an edit in release 2 ({mode})",
        )
        wait_until(lambda: serves(port, "v3", times=8), 20, f"only v3 served ({mode})")
        assert sup.state()["crashes"] == 0, sup.log()[-3000:]


BREAKAGES = {
    "syntax": ("def broken(:\n", "SyntaxError in blog.py line"),
    "import": ("import no_such_module_anywhere\n", "ModuleNotFoundError in blog.py line"),
    "raise": (
        "raise RuntimeError('database unreachable at import')\n",
        "RuntimeError in blog.py line",
    ),
}


@pytest.mark.parametrize("breakage", sorted(BREAKAGES))
def test_a_broken_push_keeps_the_old_code_serving(short_tmp: Path, breakage: str) -> None:
    sup, port = start_blog(short_tmp, "watch:\n  reload: graceful\n")  # the import check's job
    with sup:
        blog = short_tmp / "app" / "blog.py"
        good = blog.read_text()
        bad_line, expected = BREAKAGES[breakage]
        with Load(port, threads=4) as hammer:
            time.sleep(0.5)
            blog.write_text(good.replace("VERSION = ", bad_line + "VERSION = ", 1))
            wait_until(lambda: sup.state().get("reload_refused"), 30, "the refusal")
            time.sleep(1.0)
        assert hammer.result.failed == 0, hammer.result.errors
        assert hammer.result.ok > 20 and hammer.result.bodies == {"v1"}
        state = sup.state()
        assert state["state"] == "running" and state["generation"] == 1
        assert state["reload_refused"].startswith(f"reload refused: {expected}")
        assert expected in sup.cli("status", str(sup.spec)).stdout
        assert reloads(sup) == 0
        set_version(blog, "v2")
        blog.write_text(blog.read_text().replace(bad_line, ""))
        wait_until(lambda: serves(port, "v2"), 30, "the next good push served")
        assert sup.wait_state("running")["reload_refused"] is None


@pytest.mark.nginx
@pytest.mark.parametrize("mode", ["swap", "chain", "graceful"])
def test_reloads_under_load_through_nginx(short_tmp: Path, mode: str) -> None:
    from kit.nginx import running_nginx

    app = copy_app("blog", short_tmp / "app")
    spec_text = (
        f'app:\n  module: "blog:app"\n  chdir: {app}\nuwsgi:\n  processes: 4\n'
        f"runtime_dir: {short_tmp / 'rt'}\nwatch:\n  reload: {mode}\n"
    )
    sup = Supervised(short_tmp, spec_text)
    with sup:
        sup.start()
        include = render_nginx(load_spec(sup.spec))
        with running_nginx(short_tmp / "nginx", include) as nginx:  # noqa: SIM117 - needs its port
            with Load(nginx.port, threads=8) as hammer:
                for version in ("v2", "v3", "v4"):
                    time.sleep(0.5)
                    set_version(app / "blog.py", version)
                    wait_until(lambda v=version: serves(nginx.port, v), 60, f"{version} via nginx")
                    sup.wait_state("running")
                time.sleep(0.5)
        r = hammer.result
        print(f"{mode}: {r.ok} ok, {r.failed} failed, worst latency {r.worst * 1000:.0f} ms")
        assert reloads(sup) == 3
        assert r.ok > 100
        if mode in ("swap", "chain"):
            assert r.failed == 0, r.errors


@pytest.mark.nginx
def test_swap_refuses_a_broken_push_with_no_separate_import_check(short_tmp: Path) -> None:
    """In swap mode the new master is the import check: a broken release never
    replaces the old one, the refusal names the file and line, nothing fails."""
    from kit.nginx import running_nginx

    app = copy_app("blog", short_tmp / "app")
    spec_text = (
        f'app:\n  module: "blog:app"\n  chdir: {app}\nuwsgi:\n  processes: 2\n'
        f"runtime_dir: {short_tmp / 'rt'}\nwatch:\n  reload: swap\n"
    )
    sup = Supervised(short_tmp, spec_text)
    with sup:
        sup.start()
        blog = app / "blog.py"
        good = blog.read_text()
        include = render_nginx(load_spec(sup.spec))
        with running_nginx(short_tmp / "nginx", include) as nginx:  # noqa: SIM117 - needs its port
            with Load(nginx.port, threads=4) as hammer:
                time.sleep(0.5)
                blog.write_text(good.replace("VERSION = ", "def broken(:\n" + "VERSION = ", 1))
                wait_until(lambda: sup.state().get("reload_refused"), 30, "the refusal")
                time.sleep(1.0)
            assert hammer.result.failed == 0, hammer.result.errors
            assert hammer.result.bodies == {"v1"}
            state = sup.state()
            assert state["generation"] == 1 and state["state"] == "running"
            assert state["reload_refused"].startswith("swap refused: the new master exited")
            assert "SyntaxError in blog.py line 8" in state["reload_refused"]
            assert not (sup.runtime_dir / "preflight.out").exists()  # no separate check
            set_version(blog, "v2")
            blog.write_text(blog.read_text().replace("def broken(:\n", ""))
            wait_until(lambda: serves(nginx.port, "v2"), 30, "the next good push served")
