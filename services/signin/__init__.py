"""Signing in: the rules of one-time codes, the limits on guesses and sends, passwords,
the server-side sessions, and proving a phone number by code."""
