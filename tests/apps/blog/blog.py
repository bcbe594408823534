"""Test app with a module-level `app`: version marker, slow and link routes."""

import os
import time

from flask import Flask, request, url_for

VERSION = "v1"

app = Flask(__name__)


@app.route("/")
def index() -> str:
    return f"{VERSION} pid={os.getpid()}\n"


@app.route("/slow")
def slow() -> str:
    time.sleep(float(request.args.get("s", "2")))
    return f"{VERSION} slow done\n"


@app.route("/links")
def links() -> str:
    return f"script_name={request.environ.get('SCRIPT_NAME', '')} index={url_for('index')}\n"
