"""The support console: every sign-in attempt of a client (roles support and admin)."""

from flask import Blueprint

bp = Blueprint("support", __name__)
