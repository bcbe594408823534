"""The app spec: frozen dataclasses, and loading them from YAML with every problem reported.

The rest of the supervisor uses `load_spec`, `SpecError`, `Spec`, `LiveSpec`,
`runtime_paths` and `tree_problems`; the loader's helpers stay inside.
"""

from supervisor.spec.load import load_spec
from supervisor.spec.model import LiveSpec, ReloadMode, Spec, runtime_paths
from supervisor.spec.source import SpecError
from supervisor.spec.tree import tree_problems

__all__ = [
    "LiveSpec", "ReloadMode", "Spec", "SpecError", "load_spec", "runtime_paths",
    "tree_problems",
]
