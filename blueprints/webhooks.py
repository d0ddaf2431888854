"""Callbacks from providers: Vonage delivery receipts."""

from flask import Blueprint

bp = Blueprint("webhooks", __name__)
