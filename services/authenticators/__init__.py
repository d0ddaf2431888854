"""Ways to sign in with fewer codes to wait for: passkeys, authenticator apps, trusted devices.

passkeys.py wraps py_webauthn, totp.py wraps pyotp (and segno for the QR code), and
trusted_devices.py keeps the "don't ask for a code on this device" marks. sign_ins.py records
a sign-in that needed no code, so the support console tells it like any other.
"""
