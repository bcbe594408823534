"""A Flask app for the nginx tier: shows where it thinks it is mounted.

`/` echoes SCRIPT_NAME and PATH_INFO and links to a page and a static file
with url_for(); every response the app makes carries X-Served-By, so a
static file without it came from nginx, not from Flask.
"""

from __future__ import annotations

from flask import Flask, Response, request, url_for
from markupsafe import escape

app = Flask(__name__)


@app.get("/")
def index() -> str:
    env = request.environ
    return (
        "<!doctype html>\n"
        f'<p id="script-name">{escape(env.get("SCRIPT_NAME", ""))}</p>\n'
        f'<p id="path-info">{escape(env.get("PATH_INFO", ""))}</p>\n'
        f'<p id="query">{escape(request.query_string.decode())}</p>\n'
        f'<a id="page" href="{url_for("page", n=2)}">page 2</a>\n'
        f'<a id="static" href="{url_for("static", filename="hello.txt")}">hello</a>\n'
    )


@app.get("/page/<int:n>")
def page(n: int) -> str:
    return f"page {n}\n"


@app.after_request
def mark(response: Response) -> Response:
    response.headers["X-Served-By"] = "linkapp"
    return response
