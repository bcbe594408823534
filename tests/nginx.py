"""Moved to tests/kit/nginx.py.

Only test_render.py still imports `nginx_check` from here, next to another
engineer's pending edit of that file; delete this once it imports kit.nginx.
"""

from kit.nginx import nginx_check  # noqa: F401
