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


@app.route("/write")
def write() -> str:
    """Write what apps write at run time: a log, an sqlite database, bytecode."""
    import py_compile
    import sqlite3

    with open("app.log", "a") as log:
        log.write("request\n")
    db = sqlite3.connect("data.sqlite")
    db.execute("create table if not exists hits (n integer)")
    db.execute("insert into hits values (1)")
    db.commit()
    db.close()
    py_compile.compile("blog.py", cfile="__pycache__/blog.cpython-311.pyc")
    py_compile.compile("blog.py", cfile="blog.pyc")
    return "written\n"
