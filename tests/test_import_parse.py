"""The importer's readers: uWSGI's ini rules and nginx's config, on small texts.

What uWSGI 2.0 does is the reference (core/ini.c, core/utils.c magic_sub,
core/config.c placeholders); the corpus (test_import.py) covers whole setups.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from supervisor.importer.expand import expand, placeholder
from supervisor.importer.ini import Ini, read_ini
from supervisor.importer.locations import NothingPasses, analyze
from supervisor.importer.magic import file_vars, substitute
from supervisor.importer.nginxconf import read_nginx
from supervisor.importer.problems import ImportFailure
from supervisor.spec.values import parse_address

ENV = {"HOME": "/home/blog", "PATH": "/usr/bin"}


def ini(tmp: Path, text: str, arg: str = "uwsgi.ini", environ: dict[str, str] = ENV) -> Ini:
    (tmp / "uwsgi.ini").write_text(text)
    result = read_ini(arg, str(tmp), environ)
    expand(result, environ, str(tmp))
    return result


def pairs(result: Ini) -> list[tuple[str, str]]:
    return [(e.key, e.value) for e in result.entries]


def failure(tmp: Path, text: str, arg: str = "uwsgi.ini") -> str:
    with pytest.raises(ImportFailure) as caught:
        ini(tmp, text, arg)
    return str(caught.value)


# ---- ini: uWSGI's reading, not configparser's -------------------------------


def test_repeated_keys_stay_in_order_and_values_keep_semicolons(tmp_path: Path) -> None:
    text = "; top\n[uwsgi]\nenv = A=1\n  # indented comment\nenv=B=2 ; kept\nmaster\n"
    assert pairs(ini(tmp_path, text)) == [("env", "A=1"), ("env", "B=2 ; kept"), ("master", "")]


def test_only_the_asked_section_is_read_and_it_may_come_twice(tmp_path: Path) -> None:
    text = "x = before\n[uwsgi]\na = 1\n[dev]\na = 2\n[uwsgi]\nb = 3\n"
    result = ini(tmp_path, text)
    assert pairs(result) == [("a", "1"), ("b", "3")]
    assert result.other_sections == ["dev"]
    assert "uwsgi.ini:1: before any section: uWSGI ignores it" in result.notes
    assert pairs(ini(tmp_path, text, "uwsgi.ini:dev")) == [("a", "2")]


def test_magic_variables_are_uwsgis(tmp_path: Path) -> None:
    table = file_vars("conf/site.prod.ini", "web", str(tmp_path))
    d = f"{tmp_path}/conf/"
    assert table["d"] == d  # with its trailing slash: `%dapp.sock` is usual
    assert (table["s"], table["n"], table["e"], table["x"]) == (
        "site.prod.ini",
        "site.prod",
        "ini",
        "web",
    )
    assert table["c"] == "conf"
    assert table["p"] == f"{d}site.prod.ini"
    assert table["0"] == tmp_path.parts[1]
    line, notes = substitute("%d%n.sock %% %(x) %z", table)
    assert line == f"{d}site.prod.sock % %(x) "
    assert notes == ["%z names no uWSGI magic variable; uWSGI replaced it with nothing"]


def test_a_line_ending_in_percent_is_refused(tmp_path: Path) -> None:
    message = failure(tmp_path, "[uwsgi]\nlogto = /var/log/100%\nmaster = true\n")
    assert message.startswith("uwsgi.ini:2: the line ends with '%'")


def test_placeholders_take_the_first_option_and_do_arithmetic(tmp_path: Path) -> None:
    text = (
        "[uwsgi]\nbase = /srv/%(name)\nname = blog\nname = other\n"
        "chdir = %(base)/current\nworkers = %(cpus * 2)\ncpus = 3\nnext = %(cpus ++)\n"
    )
    got = dict(pairs(ini(tmp_path, text)))
    assert got["chdir"] == "/srv/blog/current"  # `name` is its first value
    assert (got["workers"], got["next"]) == ("6", "4")


def test_placeholder_expressions() -> None:
    values = {"a": "2", "b": "5", "s": "x"}
    assert placeholder("a b", lookup=values.get) == "25"
    assert placeholder("b - a", lookup=values.get) == "3"
    assert placeholder("s a", lookup=values.get) == "x2"
    assert placeholder("b / 0", lookup=values.get) == "0"


def test_a_placeholder_loop_is_refused(tmp_path: Path) -> None:
    message = failure(tmp_path, "[uwsgi]\na = %(b)\nb = %(a)\nmodule = x\n")
    assert "refers to itself" in message


def test_environment_references(tmp_path: Path) -> None:
    got = pairs(ini(tmp_path, "[uwsgi]\nchdir = $(HOME)/app\n"))
    assert got == [("chdir", "/home/blog/app")]
    message = failure(tmp_path, "[uwsgi]\nchdir = $(NOPE)/app\n")
    assert message.startswith("uwsgi.ini:2: $(NOPE) in 'chdir = $(NOPE)/app': NOPE is not set")


def test_set_placeholder_is_a_variable(tmp_path: Path) -> None:
    result = ini(tmp_path, "[uwsgi]\nset-ph = root=/srv\nchdir = %(root)/x\n")
    assert [(e.key, e.value, e.placeholder) for e in result.entries] == [
        ("root", "/srv", True),
        ("chdir", "/srv/x", False),
    ]


def test_includes_are_read_in_place_with_their_own_magic(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "common.ini").write_text("[uwsgi]\nlogto = %d%n.log\n[other]\nx = 1\n")
    (tmp_path / "sub" / "more.ini").write_text("[extra]\nharakiri = 30\n")
    text = "[uwsgi]\na = 1\ninclude = sub/common.ini\nini = sub/more.ini:extra\nb = 2\n"
    got = pairs(ini(tmp_path, text))
    assert got == [
        ("a", "1"),
        ("logto", f"{tmp_path}/sub/common.log"),
        ("harakiri", "30"),
        ("b", "2"),
    ]


def test_include_problems_name_the_including_line(tmp_path: Path) -> None:
    message = failure(tmp_path, "[uwsgi]\ninclude = missing.ini\n")
    assert message.startswith("uwsgi.ini:2: include = missing.ini: no such file")
    message = failure(tmp_path, "[uwsgi]\ninclude = uwsgi.ini\n")
    assert "loads itself again" in message
    message = failure(tmp_path, "[uwsgi]\nbase = /x\ninclude = %(base)/a.ini\n")
    assert "before it expands %(...)" in message
    message = failure(tmp_path, "[uwsgi]\ninclude = base.yaml\n")
    assert "only ini files can be imported" in message


def test_non_utf8_is_refused_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "uwsgi.ini").write_bytes(b"[uwsgi]\nmodule = app\nchdir = /srv/\xff\n")
    with pytest.raises(ImportFailure) as caught:
        read_ini("uwsgi.ini", str(tmp_path), ENV)
    assert str(caught.value) == "uwsgi.ini:3: not UTF-8 text; is this a uWSGI ini file?"


def test_crlf_lines_are_read_and_a_byte_order_mark_refused(tmp_path: Path) -> None:
    assert pairs(ini(tmp_path, "[uwsgi]\r\nmodule = app\r\n")) == [("module", "app")]
    (tmp_path / "uwsgi.ini").write_bytes(b"\xef\xbb\xbf[uwsgi]\nmodule = app\n")
    with pytest.raises(ImportFailure) as caught:
        read_ini("uwsgi.ini", str(tmp_path), ENV)
    assert str(caught.value).startswith("uwsgi.ini:1: starts with a UTF-8 byte order mark")


def test_a_key_alone_before_equals_is_refused(tmp_path: Path) -> None:
    assert failure(tmp_path, "[uwsgi]\n = 3\n").startswith("uwsgi.ini:2: '= 3': no option name")


# ---- nginx ----------------------------------------------------------------


def conf(tmp: Path, text: str, name: str = "nginx.conf") -> Path:
    path = tmp / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_nginx_tokens_quotes_comments_and_variables(tmp_path: Path) -> None:
    path = conf(
        tmp_path,
        'server { # a comment; with { braces }\n'
        '  location "/a b" { return 200 "x;y}"; set $v ${host}z; }\n'
        "  location ~ ^/re(/|$) { uwsgi_pass 127.0.0.1:1; }\n}\n",
    )
    server = read_nginx(str(path)).root.block[0]  # type: ignore[index]
    first, second = server.block  # type: ignore[misc]
    assert first.args == ["/a b"]
    assert [(d.name, d.args) for d in first.block] == [
        ("return", ["200", "x;y}"]),
        ("set", ["$v", "${host}z"]),
    ]
    assert second.args == ["~", "^/re(/|$)"]
    assert second.where.line == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("server {\n location / {\n", "nginx.conf:2: nginx config: this '{' is never closed"),
        ("}\n", "nginx.conf:1: nginx config: unexpected '}'"),
        ("user www-data\n", "nginx.conf:1: nginx config: 'user' is missing its ';'"),
        ('return "x;\n', "nginx.conf:1: nginx config: a quoted string is never closed"),
    ],
)
def test_nginx_syntax_errors(tmp_path: Path, text: str, message: str) -> None:
    path = conf(tmp_path, text)
    with pytest.raises(ImportFailure) as caught:
        read_nginx(str(path))
    assert str(caught.value).replace(str(tmp_path) + "/", "") == message


def test_nginx_includes_globs_and_upstreams(tmp_path: Path) -> None:
    conf(tmp_path, "upstream app { server 127.0.0.1:3031 weight=2; }\n", "conf.d/up.conf")
    conf(tmp_path, "server { location /shop/ { uwsgi_pass app; } }\n", "sites/shop")
    path = conf(
        tmp_path,
        "http { include uwsgi_params; include conf.d/*.conf; include sites/shop;"
        " include missing.conf; }\n",
    )
    nginx = read_nginx(str(path))
    found = analyze(nginx, parse_address("127.0.0.1:3031"), None)
    assert found.mount == "/shop"
    assert any("include missing.conf: no such file" in w for w in found.warnings)


def test_nginx_wildcard_socket_matches_localhost_and_says_so_for_others(tmp_path: Path) -> None:
    path = conf(tmp_path, "server { location / { uwsgi_pass 10.0.0.5:7777; } }\n")
    found = analyze(read_nginx(str(path)), parse_address(":7777"), None)
    assert found.mount == "/"
    assert any("if nginx runs on another host" in w for w in found.warnings)
    path = conf(tmp_path, "server { location / { uwsgi_pass localhost:7777; } }\n")
    found = analyze(read_nginx(str(path)), parse_address("127.0.0.1:7777"), None)
    assert found.warnings == []


def test_nginx_mount_from_a_regex_and_from_proxy_pass(tmp_path: Path) -> None:
    path = conf(
        tmp_path,
        "server { location ~ ^/api/(.*)$ { proxy_pass http://127.0.0.1:8000; } }\n",
    )
    found = analyze(read_nginx(str(path)), None, parse_address("127.0.0.1:8000"))
    assert found.mount == "/api"
    assert any("regex" in c for c in found.mount_comments)
    assert any("proxy_pass" in c for c in found.mount_comments)


def test_nginx_several_prefixes_leave_the_mount_to_the_user(tmp_path: Path) -> None:
    path = conf(
        tmp_path,
        "server { location /a/ { uwsgi_pass unix:/run/x.sock; }"
        " location /b/ { uwsgi_pass unix:/run/x.sock; } }\n",
    )
    found = analyze(read_nginx(str(path)), parse_address("/run/x.sock"), None)
    assert found.mount == "/"
    assert any("several URL prefixes (/a, /b)" in w for w in found.warnings)
    assert any("one spec mounts the app at one prefix" in d for d in found.dropped)


def test_nginx_that_passes_elsewhere_is_refused(tmp_path: Path) -> None:
    path = conf(tmp_path, "server { location / { uwsgi_pass unix:/run/other.sock; } }\n")
    with pytest.raises(NothingPasses) as caught:
        analyze(read_nginx(str(path)), parse_address("/run/app.sock"), None)
    assert "uwsgi_pass unix:/run/other.sock (" in str(caught.value)
