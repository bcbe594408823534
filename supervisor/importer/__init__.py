"""Import a hand-made uWSGI setup (an ini file, and nginx's config) into a spec.

`uwsgi-supervisor import uwsgi.ini [--nginx nginx.conf]` is the command;
`import_setup` is its one entry point. Nothing here starts anything: it
reads files and writes text.
"""
