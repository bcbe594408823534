"""Import a hand-made uWSGI setup (an ini file, and nginx's config) into a spec.

`uwsgi-supervisor import uwsgi.ini [--nginx nginx.conf]` is the command
(`add_parser`, `run_import`). Nothing here starts anything: it reads files
and writes text. The path of a setting: `ini.py` reads the file as uWSGI
does, `expand.py` resolves `$(...)`, `@(...)`, `%(...)`; `nginxconf.py` and
`locations.py` read nginx's config; `app.py`, `addresses.py` and
`carry.py` map it all onto a `Draft` (`mapping.py` in charge), which
`draft.py` renders as commented YAML.
"""

from supervisor.importer.args import add_parser

__all__ = ["add_parser"]  # run_import: supervisor.importer.command (loaded on use)
