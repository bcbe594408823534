"""Test app built by a factory, as in Flask's tutorial."""

from flask import Flask, url_for


def create_app() -> Flask:
    app = Flask(__name__)

    @app.route("/")
    def index() -> str:
        return "factory v1\n"

    @app.route("/links")
    def links() -> str:
        return f"index={url_for('index')}\n"

    return app
