"""The package's shape: imports flow one way, modules stay small, and every
default is declared once (the commented example agrees with it)."""

from __future__ import annotations

import ast
import re
from dataclasses import fields
from pathlib import Path
from typing import Any

from supervisor.spec.model import (
    DEFAULT_WATCH_INCLUDE,
    NEVER_WATCHED,
    BackoffSpec,
    HealthSpec,
    MetricsSpec,
    RestartSpec,
    Spec,
    UwsgiSpec,
    WatchSpec,
)
from supervisor.spec.values import parse_duration

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "supervisor"
LEAVES = {"supervisor", "supervisor.exitcodes", "supervisor.text"}
# What each subsystem may import besides itself and the leaf modules.
ALLOWED = {
    "spec": set(),
    "lifecycle": {"spec"},
    "systemd": {"spec"},
    "uwsgi": {"spec", "lifecycle"},
    "codepush": {"spec", "lifecycle", "uwsgi"},
    "metrics": {"spec", "lifecycle"},
    "importer": {"spec"},  # reads a hand setup, writes a spec: nothing that runs
}
# Lines. Past ~300 a module usually does more than one job; the longest today are
# the code watcher (arming watches across symlink flips, one job), about 370, and
# the loop, 380. The state machine is two files: machine.py and the half that
# verifies new code (verified.py).
LONGEST_MODULE = 385


def module_name(path: Path) -> str:
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports(path: Path) -> set[str]:
    """Modules of the package that `path` imports at run time (not TYPE_CHECKING)."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for child in node.body for n in ast.walk(child)}
    found: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module.startswith("supervisor"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    found.add(sub if (PACKAGE.parent / (sub.replace(".", "/") + ".py")).exists()
                              else node.module)
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("supervisor")}
    return found


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in PACKAGE.rglob("*.py")}


def subsystem(module: str) -> str:
    parts = module.split(".")
    if module in LEAVES:
        return "leaf"
    # A subsystem's package itself (`from supervisor.spec import ...`) is its public face.
    is_package = len(parts) == 2 and (PACKAGE / parts[1] / "__init__.py").exists()
    return parts[1] if len(parts) > 2 or is_package else "top"


def test_subsystems_import_only_downwards() -> None:
    wrong = []
    for module, deps in graph().items():
        mine = subsystem(module)
        if mine in ("top", "leaf"):
            continue
        for dep in deps:
            theirs = subsystem(dep)
            if theirs not in ("leaf", mine) and theirs not in ALLOWED[mine]:
                wrong.append(f"{module} imports {dep}")
    assert not wrong, "imports against the layering:\n" + "\n".join(sorted(wrong))


def test_leaf_modules_import_nothing_of_the_package() -> None:
    g = graph()
    for leaf in LEAVES:
        assert not {d for d in g[leaf] if d != leaf}, leaf


def test_no_import_cycles() -> None:
    g = graph()
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            raise AssertionError("import cycle: " + " -> ".join([*path, module]))
        if module in done or module not in g:
            return
        for dep in sorted(g[module]):
            if dep != module and not module.startswith(dep + "."):  # a package's own face
                visit(dep, [*path, module])
        done.add(module)

    for module in sorted(g):
        visit(module, [])


def test_the_state_machine_touches_no_sockets_or_processes() -> None:
    for path in (PACKAGE / "lifecycle").glob("*.py"):
        tree = ast.parse(path.read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
        assert not names & {"socket", "subprocess", "selectors", "os"}, path.name
        assert not any(n.startswith("supervisor.uwsgi") for n in names), path.name


def test_no_module_is_much_over_300_lines() -> None:
    long = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > LONGEST_MODULE
    }
    assert not long, long


# ---- defaults: declared once, in the dataclasses; the example says the same ----

KEY = re.compile(r"^(?P<indent> *)(?P<key>[a-z_]+):(?P<value>[^#]*)(#\s*default (?P<d>[^;]+))?")
WHERE: dict[str, tuple[type, str]] = {
    "uwsgi.processes": (UwsgiSpec, "processes"),
    "uwsgi.threads": (UwsgiSpec, "threads"),
    "uwsgi.listen": (UwsgiSpec, "listen"),
    "uwsgi.allow_public_socket": (UwsgiSpec, "allow_public_socket"),
    "uwsgi.allow_public_http": (UwsgiSpec, "allow_public_http"),
    "watch.enabled": (WatchSpec, "enabled"),
    "watch.debounce": (WatchSpec, "debounce"),
    "watch.max_wait": (WatchSpec, "max_wait"),
    "watch.reload": (WatchSpec, "reload"),
    "watch.preflight": (WatchSpec, "preflight"),
    "watch.preflight_timeout": (WatchSpec, "preflight_timeout"),
    "watch.poll": (WatchSpec, "poll"),
    "restart.backoff.initial": (BackoffSpec, "initial"),
    "restart.backoff.max": (BackoffSpec, "max"),
    "restart.backoff.factor": (BackoffSpec, "factor"),
    "restart.backoff.jitter": (BackoffSpec, "jitter"),
    "restart.reset_after": (RestartSpec, "reset_after"),
    "restart.max_attempts": (RestartSpec, "max_attempts"),
    "start.timeout": (Spec, "start_timeout"),
    "reload.timeout": (Spec, "reload_timeout"),
    "stop.timeout": (Spec, "stop_timeout"),
    "health.enabled": (HealthSpec, "enabled"),
    "health.host": (HealthSpec, "host"),
    "health.timeout": (HealthSpec, "timeout"),
    "health.passes": (HealthSpec, "passes"),
    "health.bake": (HealthSpec, "bake"),
    "health.interval": (HealthSpec, "interval"),
    "health.failures": (HealthSpec, "failures"),
    "metrics.listen": (MetricsSpec, "listen"),
}


def documented_defaults() -> dict[str, str]:
    """`key: value # default X` lines of etc/example.yaml, by dotted key."""
    found: dict[str, str] = {}
    stack: list[tuple[int, str]] = []
    for line in (ROOT / "etc" / "example.yaml").read_text().splitlines():
        match = KEY.match(line)
        if match is None:
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        if match["d"]:
            found[".".join(k for _, k in stack)] = match["d"].strip()
    return found


def as_value(text: str, like: Any) -> Any:
    if text in ("true", "false"):
        return text == "true"
    if text == "null":
        return None
    if isinstance(like, float) and not isinstance(like, bool):
        return parse_duration(text) if text[-1].isalpha() else float(text)
    if isinstance(like, int) and not isinstance(like, bool):
        return int(text)
    return text


def test_every_default_in_the_example_is_the_declared_one() -> None:
    documented = documented_defaults()
    assert set(documented) == set(WHERE), set(documented) ^ set(WHERE)
    for key, text in documented.items():
        cls, name = WHERE[key]
        declared = next(f.default for f in fields(cls) if f.name == name)
        assert as_value(text, declared) == declared, f"{key}: example says {text}, code {declared}"


def test_the_example_lists_the_default_globs() -> None:
    text = (ROOT / "etc" / "example.yaml").read_text()
    comment = " ".join(line.strip(" #") for line in text.splitlines() if line.startswith("  #"))
    words = set(comment.split())
    assert set(DEFAULT_WATCH_INCLUDE) <= words, set(DEFAULT_WATCH_INCLUDE) - words
    assert set(NEVER_WATCHED) <= words, set(NEVER_WATCHED) - words
