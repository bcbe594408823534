"""The example app uwsgi-supervisor runs out of the box: edit it and watch it reload."""

from flask import Flask, render_template

GREETING = "Hello from uwsgi-supervisor"


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/")
    def index() -> str:
        return render_template("index.html", greeting=GREETING)

    @app.route("/health")
    def health() -> str:
        return "ok\n"

    return app
