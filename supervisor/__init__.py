"""uwsgi-supervisor: run one Python web app under uWSGI, unattended."""

__version__ = "0.1.0"
