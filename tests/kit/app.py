"""The test apps' version marker: what a code push changes."""

from __future__ import annotations

from pathlib import Path


def set_version(app_file: Path, version: str) -> None:
    """Save the app with a new `VERSION = "..."` marker, in place, as an editor does."""
    text = app_file.read_text()
    start = text.index('VERSION = "') + len('VERSION = "')
    end = text.index('"', start)
    app_file.write_text(text[:start] + version + text[end:])
