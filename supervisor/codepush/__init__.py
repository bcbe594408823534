"""From a code push to a reload: watch the tree, debounce, import-check, then reload."""

from supervisor.codepush.glue import CodePush

__all__ = ["CodePush"]
