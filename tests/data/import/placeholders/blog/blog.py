def create_app():
    from flask import Flask

    return Flask(__name__)
