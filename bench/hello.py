"""A bare Flask "hello" route: the ceiling of this machine, gunicorn and Flask, which the
bench serves with the same gunicorn settings as ClientGate and divides every figure by."""

from flask import Flask

app = Flask(__name__)


@app.route("/hello")
def hello():
    return "hello"
