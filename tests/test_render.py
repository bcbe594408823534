"""The rendered nginx include and systemd drop-in: text, and real `nginx -t`.

The shipped examples in etc/nginx/ are the render of `example_spec` (the app of
etc/example.yaml); after a change to render.py, rewrite them with
`.venv/bin/python tests/test_render.py`.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest
import yaml
from kit.nginx import nginx_check

from supervisor.render import nginx_read_timeout, render_nginx
from supervisor.spec.model import Address, AppSpec, NginxSpec, Spec, UwsgiSpec
from supervisor.systemd.unit import render_unit_dropin

ROOT = Path(__file__).resolve().parent.parent
SHIPPED = {
    "/": ROOT / "etc/nginx/uwsgi-supervisor-example.conf",
    "/bbb": ROOT / "etc/nginx/uwsgi-supervisor-example-bbb.conf",
}


def example_spec(mount: str = "/") -> Spec:
    """The spec the shipped examples are rendered from: etc/example.yaml's app."""
    static = "/static" if mount == "/" else f"{mount}/static"
    return Spec(
        path=Path("/etc/uwsgi-supervisor/blog.yaml"),
        name="blog",
        app=AppSpec(
            module="blog.wsgi",
            callable="app",
            factory=False,
            chdir=Path("/srv/blog/current"),
        ),
        uwsgi=UwsgiSpec(
            binary="uwsgi",
            socket=Address(path=Path("/run/uwsgi-supervisor/blog.sock")),  # the socket unit's
            mount=mount,
            options=(("harakiri", "30"),),
        ),
        runtime_dir=Path("/run/uwsgi-supervisor/blog"),
        user="www-blog",
        group="www-blog",
        nginx=NginxSpec(
            group="www-data",
            static=((static, Path("/srv/blog/current/static")),),
        ),
    )


def with_uwsgi(spec: Spec, **changes: Any) -> Spec:
    return dataclasses.replace(spec, uwsgi=dataclasses.replace(spec.uwsgi, **changes))


def with_nginx(spec: Spec, **changes: Any) -> Spec:
    return dataclasses.replace(spec, nginx=dataclasses.replace(spec.nginx, **changes))


def location(text: str, head: str) -> str:
    """The body of the location block opened by `head` (e.g. "location / {")."""
    start = text.index(head + "\n") + len(head) + 1
    return text[start : text.index("\n}", start)]


# -- nginx include: text ----------------------------------------------------


def test_root_mount_passes_everything_to_the_socket() -> None:
    text = render_nginx(example_spec("/"))
    body = location(text, "location / {")
    assert "    include uwsgi_params;" in body
    assert "    uwsgi_pass unix:/run/uwsgi-supervisor/blog.sock;" in body
    assert "location = " not in text
    assert "uwsgi_modifier1" not in text


def test_header_says_it_is_an_include_and_how() -> None:
    text = render_nginx(example_spec("/"))
    header = text[: text.index("\nlocation")]
    assert all(line.startswith("#") or not line for line in header.splitlines())
    assert "server { ... }" in header
    assert "include /etc/nginx/snippets/uwsgi-supervisor-blog.conf;" in header
    assert "/etc/uwsgi-supervisor/blog.yaml" in header
    assert "'www-data'" in header  # who may connect to the socket


def test_sub_path_redirects_bare_mount_keeping_port_and_query() -> None:
    text = render_nginx(example_spec("/bbb"))
    body = location(text, "location = /bbb {")
    # Relative: no $host (drops the port) and no $http_host (client-supplied).
    assert "    absolute_redirect off;" in body
    assert "    return 301 /bbb/$is_args$args;" in body
    assert "$host" not in text and "$http_host" not in text


def test_sub_path_passes_full_uri_without_modifier() -> None:
    text = render_nginx(example_spec("/bbb"))
    body = location(text, "location /bbb/ {")
    assert "    uwsgi_pass unix:/run/uwsgi-supervisor/blog.sock;" in body
    assert "uwsgi_modifier1" not in text
    assert "SCRIPT_NAME" not in body  # uWSGI's mount + manage-script-name set it
    assert "location / {" not in text


@pytest.mark.parametrize("url", ["/bbb/static", "/bbb/static/", "/bbb/static//"])
@pytest.mark.parametrize("directory", ["/srv/app/static", "/srv/app/static/"])
def test_static_alias_keeps_both_trailing_slashes(url: str, directory: str) -> None:
    spec = with_nginx(example_spec("/bbb"), static=((url, Path(directory)),))
    body = location(render_nginx(spec), "location ^~ /bbb/static/ {")
    assert body == "    alias /srv/app/static/;"


def test_no_static_locations_without_static() -> None:
    spec = with_nginx(example_spec("/"), static=())
    assert "alias" not in render_nginx(spec)


@pytest.mark.parametrize(
    ("options", "timeout"),
    [
        ((), 60),
        ((("harakiri", "20"),), 60),
        ((("harakiri", "60"),), 90),
        ((("harakiri", "300"),), 330),
        ((("harakiri", "0"),), 60),
        ((("harakiri", "300"), ("harakiri", "90")), 120),
    ],
)
def test_read_timeout_outlasts_harakiri(options: tuple[tuple[str, str], ...], timeout: int) -> None:
    spec = with_uwsgi(example_spec("/"), options=options)
    assert nginx_read_timeout(spec) == timeout
    assert f"    uwsgi_read_timeout {timeout}s;" in render_nginx(spec)


def test_retries_connect_errors_only_never_timeouts() -> None:
    text = render_nginx(example_spec("/bbb"))
    body = location(text, "location /bbb/ {")
    assert "    uwsgi_next_upstream error;" in body
    assert "non_idempotent" not in text


def test_tcp_socket() -> None:
    spec = with_uwsgi(example_spec("/"), socket=Address(host="127.0.0.1", port=7777))
    text = render_nginx(spec)
    assert "    uwsgi_pass 127.0.0.1:7777;" in text
    assert "must be in group" not in text  # the socket group is for unix sockets


def test_path_with_space_is_quoted() -> None:
    spec = with_uwsgi(example_spec("/"), socket=Address(path=Path("/run/my app/app.sock")))
    assert '    uwsgi_pass "unix:/run/my app/app.sock";' in render_nginx(spec)


@pytest.mark.parametrize(
    "spec",
    [
        with_uwsgi(example_spec("/"), socket=Address(path=Path("/run/$x/app.sock"))),
        with_uwsgi(example_spec("/"), socket=Address(path=Path("/run/a\nb/app.sock"))),
        with_uwsgi(example_spec("/"), mount="/b b"),
        with_uwsgi(example_spec("/"), mount="/b;b"),
        with_nginx(example_spec("/"), static=(("/static/../etc", Path("/srv")),)),
        with_nginx(example_spec("/"), static=(("static", Path("/srv")),)),
        with_nginx(example_spec("/"), static=(("/static", Path("/srv/$x")),)),
        dataclasses.replace(example_spec("/"), name="a/b"),
    ],
)
def test_refuses_what_nginx_would_misread(spec: Spec) -> None:
    with pytest.raises(ValueError):
        render_nginx(spec)


# -- systemd drop-in ---------------------------------------------------------


def test_dropin_runs_as_user_with_the_nginx_group() -> None:
    text = render_unit_dropin(example_spec())
    assert "/etc/systemd/system/uwsgi-supervisor@blog.service.d/override.conf" in text
    settings = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert settings == [
        "[Service]",
        "User=www-blog",
        "Group=www-blog",
        "SupplementaryGroups=www-data",
    ]


def test_dropin_without_nginx_group_or_user() -> None:
    spec = dataclasses.replace(with_nginx(example_spec(), group=None), user=None, group=None)
    settings = [line for line in render_unit_dropin(spec).splitlines() if line[:1] != "#"]
    assert settings == ["[Service]"]


def test_dropin_user_without_group_drops_the_units_group() -> None:
    spec = dataclasses.replace(example_spec(), group=None)
    settings = [line for line in render_unit_dropin(spec).splitlines() if line[:1] != "#"]
    assert settings == ["[Service]", "User=www-blog", "Group=", "SupplementaryGroups=www-data"]


def test_dropin_skips_supplementary_group_it_already_has() -> None:
    spec = dataclasses.replace(example_spec(), group="www-data")
    assert "SupplementaryGroups" not in render_unit_dropin(spec)


def test_dropin_escapes_specifiers() -> None:
    spec = dataclasses.replace(example_spec(), user="a%b")
    assert "User=a%%b" in render_unit_dropin(spec)


# -- shipped examples and real nginx ------------------------------------------


def test_example_spec_mirrors_the_shipped_spec() -> None:
    # The loader would refuse etc/example.yaml here (its users and paths do not
    # exist on this host), so compare what the render reads with the raw YAML.
    doc = yaml.safe_load((ROOT / "etc/example.yaml").read_text())
    spec = example_spec("/")
    assert (doc["name"], doc["user"], doc["group"]) == (spec.name, spec.user, spec.group)
    assert doc["uwsgi"].get("mount", "/") == spec.uwsgi.mount
    assert "runtime_dir" not in doc  # the default
    assert Path(doc["uwsgi"]["socket"]) == spec.uwsgi.socket.path
    assert str(doc["uwsgi"]["options"]["harakiri"]) == dict(spec.uwsgi.options)["harakiri"]
    assert doc["nginx"]["group"] == spec.nginx.group
    assert {k: Path(v) for k, v in doc["nginx"]["static"].items()} == dict(spec.nginx.static)


@pytest.mark.parametrize("mount", sorted(SHIPPED))
def test_shipped_example_is_the_render(mount: str) -> None:
    assert SHIPPED[mount].read_text() == render_nginx(example_spec(mount)), (
        "etc/nginx example is stale: run .venv/bin/python tests/test_render.py"
    )


@pytest.mark.nginx
@pytest.mark.parametrize(
    "spec",
    [
        with_uwsgi(example_spec("/"), socket=Address(host="127.0.0.1", port=7777), options=()),
        with_nginx(example_spec("/bbb"), static=()),
        with_nginx(
            example_spec("/bbb"),
            static=(("/bbb/static", Path("/srv/a")), ("/media", Path("/srv/b"))),
        ),
    ],
    ids=["tcp-root", "bbb-no-static", "bbb-two-static"],
)
def test_nginx_accepts_the_include(spec: Spec, tmp_path: Path) -> None:
    result = nginx_check(tmp_path, render_nginx(spec))
    assert result.returncode == 0, result.stderr
    assert "test is successful" in result.stderr


@pytest.mark.nginx
@pytest.mark.parametrize("mount", sorted(SHIPPED))
def test_nginx_accepts_the_shipped_example(mount: str, tmp_path: Path) -> None:
    result = nginx_check(tmp_path, SHIPPED[mount].read_text())
    assert result.returncode == 0, result.stderr


@pytest.mark.nginx
def test_nginx_accepts_quoted_paths(tmp_path: Path) -> None:
    spec = with_nginx(
        with_uwsgi(example_spec("/bbb"), socket=Address(path=Path('/run/my "app"/app.sock'))),
        static=(("/bbb/static", Path("/srv/my app/static")),),
    )
    result = nginx_check(tmp_path, render_nginx(spec))
    assert result.returncode == 0, result.stderr


if __name__ == "__main__":
    for mount, path in SHIPPED.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(render_nginx(example_spec(mount)))
        print(f"wrote {path.relative_to(ROOT)}")
