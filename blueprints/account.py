"""The client's own settings: how codes reach them."""

from flask import Blueprint

bp = Blueprint("account", __name__)
