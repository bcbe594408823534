"""`uwsgi-supervisor render socket`: the socket unit drop-in for a spec's addresses.

Its text setting by setting, what it refuses (a socket inside the runtime directory, which
systemd deletes whenever the service stops), the command line, and `systemd-analyze verify`
on the drop-in beside the shipped units. Under a real systemd the drop-in is exercised by
tests/test_socket_unit.py.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from pathlib import Path
from typing import Any, Optional

import pytest
from conftest import require
from sysd import REPO, with_venv_binary

from supervisor.cli import main
from supervisor.spec.model import Address, AppSpec, NginxSpec, Spec, UwsgiSpec
from supervisor.systemd.socketunit import listen_stream, render_socket_dropin

UNITS = REPO / "units"


def spec(socket: str = "/run/uwsgi-supervisor/blog.sock", **uwsgi: Any) -> Spec:
    address = Address(path=Path(socket)) if socket.startswith("/") else tcp(socket)
    return Spec(
        path=Path("/etc/uwsgi-supervisor/blog.yaml"),
        name="blog",
        app=AppSpec(module="blog", callable="app", factory=False, chdir=Path("/srv/blog")),
        uwsgi=UwsgiSpec(binary="uwsgi", socket=address, **uwsgi),
        runtime_dir=Path("/run/uwsgi-supervisor/blog"),
        nginx=NginxSpec(group="www-data" if address.is_unix else None),
    )


def tcp(text: str) -> Address:
    host, _, port = text.rpartition(":")
    return Address(host=host.strip("[]"), port=int(port))


def settings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_unix_socket_replaces_the_units_address_and_sets_nginx_group() -> None:
    text = render_socket_dropin(spec())
    assert settings(text) == [
        "[Socket]",
        "ListenStream=",
        "ListenStream=/run/uwsgi-supervisor/blog.sock",
        "Backlog=1024",
        "SocketGroup=www-data",
        "SocketMode=0660",
    ]
    assert text.startswith(
        "# systemd drop-in for uwsgi-supervisor@blog.socket, rendered from"
        " /etc/uwsgi-supervisor/blog.yaml\n"
    )
    assert "/etc/systemd/system/uwsgi-supervisor@blog.socket.d/override.conf" in text
    assert "systemctl daemon-reload && systemctl restart uwsgi-supervisor@blog.socket" in text


def test_tcp_socket_and_http_listener_with_the_specs_backlog() -> None:
    s = spec("127.0.0.1:3031", http=tcp("127.0.0.1:8000"), listen=4096)
    assert settings(render_socket_dropin(s)) == [
        "[Socket]",
        "ListenStream=",
        "ListenStream=127.0.0.1:3031",
        "ListenStream=127.0.0.1:8000",
        "Backlog=4096",
    ]


def test_unix_socket_without_nginx_group_keeps_the_units_group() -> None:
    s = dataclasses.replace(spec(), nginx=NginxSpec())
    text = render_socket_dropin(s)
    assert "SocketGroup" not in text
    assert "keeps the unit's group" in text


@pytest.mark.parametrize(
    "address, expected",
    [
        (Address(path=Path("/run/blog/app.sock")), "/run/blog/app.sock"),
        (Address(path=Path("/run/50%/app.sock")), "/run/50%%/app.sock"),  # specifiers
        (Address(host="127.0.0.1", port=3031), "127.0.0.1:3031"),
        (Address(host="::1", port=3031), "[::1]:3031"),
        (Address(host="", port=3031), "0.0.0.0:3031"),  # uWSGI's ":3031"
    ],
)
def test_listen_stream_spells_addresses_as_systemd_reads_them(
    address: Address, expected: str
) -> None:
    assert listen_stream(address) == expected


def test_host_names_are_resolved_as_the_supervisor_would_bind_them() -> None:
    # systemd takes no host names; localhost is 127.0.0.1 or ::1 depending on the resolver.
    assert listen_stream(Address(host="localhost", port=3031)) in ("127.0.0.1:3031", "[::1]:3031")


@pytest.mark.parametrize("key", ["socket", "http"])
def test_refuses_a_socket_inside_the_runtime_directory(key: str) -> None:
    inside = Address(path=Path("/run/uwsgi-supervisor/blog/app.sock"))
    s = spec()
    s = dataclasses.replace(s, uwsgi=dataclasses.replace(s.uwsgi, **{key: inside}))
    with pytest.raises(ValueError) as err:
        render_socket_dropin(s)
    message = str(err.value)
    inside_dir = f"uwsgi.{key} /run/uwsgi-supervisor/blog/app.sock is inside the runtime directory"
    fix = f"set uwsgi.{key}: /run/uwsgi-supervisor/blog.sock in /etc/uwsgi-supervisor/blog.yaml"
    assert inside_dir in message and fix in message, message


@pytest.mark.parametrize("path", ["/run/a\nb.sock", "/run/a$b.sock", "/run/ab\\"])
def test_refuses_what_systemd_would_misread(path: str) -> None:
    with pytest.raises(ValueError, match="cannot be written into a systemd unit"):
        render_socket_dropin(spec(path))


# --- the command line ---------------------------------------------------------------------


def write_spec(tmp: Path, socket: Optional[str], http: Optional[str] = None) -> Path:
    (tmp / "hello.py").write_text("def app(environ, start_response):\n    return [b'hi']\n")
    lines = ["app:", '  module: "hello:app"', f"  chdir: {tmp}", "uwsgi:", "  processes: 1"]
    if socket:
        lines.append(f"  socket: {socket}")
    if http:
        lines.append(f"  http: {http}")
    path = tmp / "blog.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def test_cli_prints_the_dropin(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write_spec(tmp_path, "127.0.0.1:3031", "127.0.0.1:8000")
    assert main(["render", "socket", str(path)]) == 0
    out = capsys.readouterr().out
    assert settings(out)[:4] == [
        "[Socket]", "ListenStream=", "ListenStream=127.0.0.1:3031", "ListenStream=127.0.0.1:8000"
    ]  # fmt: skip


def test_cli_refuses_the_default_socket_with_the_fix(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RUNTIME_DIRECTORY", raising=False)
    path = write_spec(tmp_path, None)  # <runtime_dir>/app.sock
    assert main(["render", "socket", str(path)]) == 78
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert "set uwsgi.socket: /run/uwsgi-supervisor/blog.sock in" in err, err


# --- systemd reads it ---------------------------------------------------------------------


def test_systemd_analyze_verifies_the_dropin_beside_the_shipped_units(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze not found (install systemd)")
    assert analyze is not None
    for name in ("uwsgi-supervisor@.socket", "uwsgi-supervisor@.service"):
        (tmp_path / name).write_text(with_venv_binary((UNITS / name).read_text()))
    dropins = tmp_path / "uwsgi-supervisor@blog.socket.d"
    dropins.mkdir()
    s = spec("/run/uwsgi-supervisor/blog.sock", http=tcp("127.0.0.1:8000"))
    (dropins / "override.conf").write_text(render_socket_dropin(s))
    for template in ("uwsgi-supervisor@.socket", "uwsgi-supervisor@.service"):
        (tmp_path / template.replace("@.", "@blog.")).symlink_to(template)
    cp = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "uwsgi-supervisor@blog.socket"),
         str(tmp_path / "uwsgi-supervisor@blog.service")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert (cp.returncode, cp.stdout + cp.stderr) == (0, ""), cp.stdout + cp.stderr


def test_systemd_analyze_catches_a_bad_dropin(tmp_path: Path) -> None:
    """The check above would see a drop-in systemd cannot read."""
    analyze = shutil.which("systemd-analyze")
    require(analyze is not None, "systemd-analyze not found (install systemd)")
    assert analyze is not None
    shutil.copyfile(UNITS / "uwsgi-supervisor@.socket", tmp_path / "uwsgi-supervisor@.socket")
    dropins = tmp_path / "uwsgi-supervisor@blog.socket.d"
    dropins.mkdir()
    (dropins / "override.conf").write_text("[Socket]\nSocketMode=rw\n")
    (tmp_path / "uwsgi-supervisor@blog.socket").symlink_to("uwsgi-supervisor@.socket")
    cp = subprocess.run(
        [analyze, "verify", "--man=no", str(tmp_path / "uwsgi-supervisor@blog.socket")],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "override.conf:2: Failed to parse mode value" in cp.stderr, cp.stderr
