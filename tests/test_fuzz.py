"""Property-based fuzzing of the spec loader and the nginx renderer (issue 10).

Whatever the spec file holds, `load_spec` either returns a Spec or raises
SpecError whose every line is `FILE[:LINE:COL]: ...` or an indented source
line and caret: never another exception (a traceback and exit 1 under
systemd). Whatever valid values a spec gives, `render_nginx` either renders
or raises ValueError, and no value can end a directive or open a block.

Bounded to 300 examples each (about 15 s in all); crashes found
here have plain regression tests in tests/test_spec_host.py.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from supervisor.render import render_nginx
from supervisor.spec import SpecError, load_spec
from supervisor.spec.model import Address, AppSpec, NginxSpec, Spec, UwsgiSpec
from supervisor.spec.values import check_name, normalise_mount, parse_address

ROOT = Path(__file__).resolve().parent.parent
SOURCES = [ROOT / "etc" / "example.yaml", *sorted((ROOT / "tests/specs/good").glob("*.yaml"))]
# FUZZ_EXAMPLES=5000 for a longer hunt; the default keeps the file near 15 s.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    database=None,
)


@pytest.fixture(scope="module")
def deploy() -> Iterator[Path]:
    """The tree tests/specs/good/ point at ({APPDIR}), as test_specload builds it."""
    root = Path(tempfile.mkdtemp(prefix="usup-fuzz-"))
    (root / "app" / "shop").mkdir(parents=True)
    (root / "app" / "static").mkdir()
    (root / "app" / "blog.py").write_text("app = object()\n")
    (root / "app" / "shop" / "__init__.py").write_text("")
    (root / "app" / "shop" / "wsgi.py").write_text("def create_app(): ...\n")
    (root / "current").symlink_to(root / "app")
    (root / "bin").mkdir()
    shutil.copy("/bin/true", root / "bin" / "uwsgi")
    yield root
    shutil.rmtree(root, ignore_errors=True)


def environ(deploy: Path) -> dict[str, str]:
    return {"RUNTIME_DIRECTORY": str(deploy / "rt"), "PATH": str(deploy / "bin")}


def load_or_spec_error(deploy: Path, data: bytes) -> None:
    """Load `data` as a spec: it loads, or every line of the SpecError is well formed."""
    path = deploy / "fuzz.yaml"
    path.write_bytes(data)
    try:
        load_spec(path, environ(deploy))
    except SpecError as exc:
        text = str(exc)
        assert exc.problems and text
        head = re.compile(rf"{re.escape(str(path))}(:\d+:\d+)?: \S")
        for line in text.split("\n"):
            assert head.match(line) or line.startswith("    "), text
        for problem in exc.problems:
            assert head.match(problem.render()), problem
            assert problem.line == 0 or problem.col >= 1, problem
        assert "\0" not in text and "\x1b" not in text


# ---- the loader ------------------------------------------------------------------

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(
        [
            "/",
            "/srv",
            "/tmp/" + "a" * 300,
            "nobody",
            "root",
            "0",
            "4294967296",
            "127.0.0.1:0",
            "0.0.0.0:80",
            "unix:/x",
            "[::1]:8000",
            "blog:app",
            "a.b:c()",
            "2s",
            "1m30s",
            "-1s",
            "no",
            "0755",
            "1.10",
            "~/x",
            "\0",
            "\ud800",
            "$x",
            "a;b{c}",
            "x\ny",
        ]
    ),
)
documents = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5)
    ),
    max_leaves=25,
)


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(deploy: Path, data: bytes) -> None:
    load_or_spec_error(deploy, data)


@FUZZ
@given(document=documents)
def test_random_yaml_documents(deploy: Path, document: Any) -> None:
    load_or_spec_error(
        deploy, yaml.safe_dump(document, allow_unicode=True).encode("utf-8", "surrogatepass")
    )


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place in a loaded YAML document a value could be swapped."""
    yield prefix
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _paths(value, (*prefix, key))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            yield from _paths(value, (*prefix, index))


def _replace(node: Any, where: tuple[Any, ...], value: Any) -> Any:
    if not where:
        return value
    node[where[0]] = _replace(node[where[0]], where[1:], value)
    return node


@FUZZ
@given(source=st.sampled_from(SOURCES), choice=st.data())
def test_example_and_good_specs_with_one_value_swapped(
    deploy: Path, source: Path, choice: st.DataObject
) -> None:
    document = yaml.safe_load(source.read_text().replace("{APPDIR}", str(deploy)))
    places = list(_paths(document))
    where = choice.draw(st.sampled_from(places[1:]))
    value = choice.draw(documents)
    mutated = _replace(document, where, value)
    load_or_spec_error(
        deploy, yaml.safe_dump(mutated, allow_unicode=True).encode("utf-8", "surrogatepass")
    )


@FUZZ
@given(source=st.sampled_from(SOURCES), choice=st.data())
def test_example_and_good_specs_with_text_mutated(
    deploy: Path, source: Path, choice: st.DataObject
) -> None:
    text = source.read_text().replace("{APPDIR}", str(deploy))
    for _ in range(choice.draw(st.integers(1, 3))):
        at = choice.draw(st.integers(0, len(text)))
        end = choice.draw(st.integers(at, min(len(text), at + 20)))
        insert = choice.draw(
            st.text(max_size=10)
            | st.sampled_from(
                [":", "- ", "  ", "\n", "\t", "{", "[", "'", '"', "&a ", "*a", "!!int ", "<<: "]
            )
        )
        text = text[:at] + insert + text[end:]
    load_or_spec_error(deploy, text.encode("utf-8", "surrogatepass"))


# ---- the nginx include ---------------------------------------------------------


def _valid(parse: Any, text: str, default: str) -> Any:
    """What the loader makes of `text`; what it makes of `default` if it refuses it."""
    try:
        return parse(text)
    except ValueError:
        return parse(default)


# Mostly valid values, with the characters that would break nginx's syntax
# mixed in: the loader's own parsers decide which are valid.
_URL_CHARS = "ab/._~+@,-" + "$;{}\"' \n\\#"
url_text = st.text(alphabet=_URL_CHARS, max_size=15).map(lambda t: "/" + t)
path_text = st.text(max_size=30) | st.text(alphabet="ab/._-$;{}\"' \n\\#", max_size=30)
socket_text = st.one_of(
    path_text.map(lambda t: "/" + t),
    st.integers(1, 65535).map(lambda p: f"127.0.0.1:{p}"),
    st.integers(1, 65535).map(lambda p: f"[::1]:{p}"),
    st.text(alphabet="a-.:;{", max_size=10).map(lambda t: f"localhost{t}:80"),
)
# A line of the include: a comment, blank, a block's start or end, or one directive.
_LINE = re.compile(
    r"(#[^\n]*|"
    r"location (= |\^~ )?/[A-Za-z0-9/_.~+@,-]* \{|"
    r"\}|"
    r"    [a-z_]+( [^\s;{}\"]+| \"([^\"\\\n]|\\.)*\")*;|"
    r"    #[^\n]*)?"
)


@FUZZ
@given(
    name=st.text(alphabet="ab_.-;{ \n$", min_size=1, max_size=10),
    mount=url_text,
    statics=st.lists(st.tuples(url_text, path_text), max_size=3),
    socket=socket_text,
    group=st.none() | st.text(max_size=10),
    harakiri=st.none() | st.text(max_size=6),
    spec_path=path_text,
)
def test_render_never_lets_a_value_out_of_its_place(
    name: str,
    mount: str,
    statics: list[tuple[str, str]],
    socket: str,
    group: Any,
    harakiri: Any,
    spec_path: str,
) -> None:
    address: Address = _valid(parse_address, socket, "/run/blog.sock")
    static = tuple(
        (_valid(normalise_mount, prefix, "/static"), Path("/" + directory))
        for prefix, directory in statics
    )
    static = tuple((prefix, directory) for prefix, directory in static if prefix != "/")
    spec = Spec(
        path=Path("/etc/uwsgi-supervisor") / (spec_path or "x.yaml"),
        name=_valid(check_name, name, "blog"),
        app=AppSpec(module="blog", callable="app", factory=False, chdir=Path("/srv/blog")),
        uwsgi=UwsgiSpec(
            binary="uwsgi",
            socket=address,
            mount=_valid(normalise_mount, mount, "/"),
            options=(("harakiri", harakiri),) if harakiri is not None else (),
        ),
        runtime_dir=Path("/run/uwsgi-supervisor/blog"),
        nginx=NginxSpec(group=group, static=static),
    )
    try:
        text = render_nginx(spec)
    except ValueError as exc:
        assert "cannot be written into nginx's config" in str(exc) or "not a plain URL" in str(exc)
        return
    assert text.endswith("\n")
    depth = 0
    for line in text[:-1].split("\n"):
        assert _LINE.fullmatch(line), line
        depth += line.endswith("{") and not line.startswith("#")
        depth -= line == "}"
        assert depth in (0, 1), text
    assert depth == 0
