"""The firm's own look: its logo and brand colour on every page and in the HTML emails.

PORTAL_COLOUR is checked once at start against WCAG 2.1 AA (4.5:1 for normal text): white
text sits on it in the header and on buttons, and links in it sit on the white and pale grey
backgrounds. A colour too light is darkened until it passes, and the log says so; a value that
is not a colour stops the start. PORTAL_LOGO is an https address (the Content-Security-Policy
then names its origin for images) or a file the app serves itself at /brand/logo.
"""

from __future__ import annotations

import hashlib
import logging
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Optional
from urllib.parse import urlsplit

from services.urls import origin_of

log = logging.getLogger("clientgate")

AA_NORMAL_TEXT = 4.5
# What the brand colour meets: white text on it, and it as text on the card and page colours.
BACKGROUNDS = ("#ffffff", "#f3f5f8")
LOGO_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
              ".gif": "image/gif", ".webp": "image/webp", ".svg": "image/svg+xml"}
LOGO_MAX_BYTES = 512 * 1024
HEX = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")


@dataclass(frozen=True)
class Brand:
    colour: Optional[str]  # "#1f4e8c", already AA-safe
    colour_dark: Optional[str]  # for hover
    logo_url: Optional[str]  # an https address, or None when the app serves the file
    logo_file: Optional[bytes]
    logo_type: Optional[str]
    version: str  # changes when the look changes, so browsers fetch the new stylesheet

    @property
    def logo_src(self) -> Optional[str]:
        """The logo's address on pages: an https one as it is, or this app's file by its
        version (blueprints/branding.py keeps only that for a day)."""
        return self.logo_url or (f"/brand/logo?v={self.version}" if self.logo_file else None)

    @property
    def stylesheet(self) -> str:
        if not self.colour:
            return ""
        return (f":root {{ --brand: {self.colour}; --brand-dark: {self.colour_dark}; }}\n")


def _channel(value: int) -> float:
    c = value / 255
    return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4


def luminance(colour: str) -> float:
    """WCAG relative luminance of a #rrggbb colour."""
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return 0.2126 * _channel(r) + 0.7152 * _channel(g) + 0.0722 * _channel(b)


def contrast(a: str, b: str) -> float:
    """WCAG contrast ratio between two #rrggbb colours (1 to 21)."""
    la, lb = sorted((luminance(a), luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def normal_hex(value: str) -> str:
    """'#ABC', 'abc', '#aabbcc' as '#aabbcc'; ValueError for anything else."""
    match = HEX.match(value.strip())
    if not match:
        raise ValueError(f"PORTAL_COLOUR must be a colour like #1f4e8c, not {value!r}")
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(ch * 2 for ch in digits)
    return "#" + digits


def darken(colour: str, factor: float) -> str:
    r, g, b = (int(colour[i:i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{max(0, round(c * factor)):02x}" for c in (r, g, b))


def worst_contrast(colour: str) -> float:
    return min(contrast(colour, background) for background in BACKGROUNDS)


def accessible_colour(value: str) -> tuple[str, Optional[str]]:
    """The colour to use, and a note for the log if it had to be darkened to pass AA."""
    colour = normal_hex(value)
    if worst_contrast(colour) >= AA_NORMAL_TEXT:
        return colour, None
    adjusted, factor = colour, 1.0
    while worst_contrast(adjusted) < AA_NORMAL_TEXT:
        factor -= 0.02
        adjusted = darken(colour, factor)
    return adjusted, (
        f"PORTAL_COLOUR {colour} is too light for white text and for links "
        f"(contrast {worst_contrast(colour):.1f}:1, WCAG AA needs {AA_NORMAL_TEXT}:1); "
        f"using the darker {adjusted} ({worst_contrast(adjusted):.1f}:1) instead."
    )


# A host name of DNS labels (the Content-Security-Policy names it as it is: anything else
# there, a ";" or a space, would add directives of its own to every page's policy).
HOST_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
                       r"(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")


def _https_logo(value: str) -> str:
    """An https logo address, checked so that its origin is a plain host (and port)."""
    wrong = ValueError(f"PORTAL_LOGO must be an https:// address or a file, not {value!r}")
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        raise wrong
    parts = urlsplit(value)
    try:
        parts.port  # not a number, or over 65535
    except ValueError:
        raise wrong from None
    if (parts.scheme != "https" or not parts.hostname or "@" in parts.netloc
            or not HOST_NAME.match(parts.hostname)):
        raise wrong
    return value


def _logo_file(value: str) -> bytes:
    """The logo file's bytes, never reading more than LOGO_MAX_BYTES (+1) of it: a wrong
    path to something huge, or endless (/dev/zero, a pipe), must not fill the memory of
    every worker at start."""
    path = Path(value)
    try:
        if not stat.S_ISREG(path.stat().st_mode):
            raise ValueError(f"PORTAL_LOGO {value!r} cannot be read: it is not a file")
        with path.open("rb") as file:
            data = file.read(LOGO_MAX_BYTES + 1)
    except OSError as error:
        raise ValueError(f"PORTAL_LOGO {value!r} cannot be read: {error.strerror}") from None
    if len(data) > LOGO_MAX_BYTES:
        raise ValueError(f"PORTAL_LOGO {value!r} is over 512 KB; a logo needs far less")
    return data


def read_logo(value: str) -> tuple[Optional[str], Optional[bytes], Optional[str]]:
    """(address, None, None) for an https logo; (None, bytes, type) for a file."""
    value = value.strip()
    if value.lower().startswith(("http://", "https://")):
        return _https_logo(value), None, None
    kind = LOGO_TYPES.get(Path(value).suffix.lower())
    if kind is None:
        raise ValueError(f"PORTAL_LOGO {value!r} must be a .png, .jpg, .gif, .webp or .svg file")
    return None, _logo_file(value), kind


def load(config) -> Brand:
    """The brand from PORTAL_COLOUR and PORTAL_LOGO (ValueError says what is wrong)."""
    colour = dark = None
    if config.get("PORTAL_COLOUR"):
        colour, note = accessible_colour(config["PORTAL_COLOUR"])
        if note:
            log.warning(note)
        dark = darken(colour, 0.8)
    logo_url = logo_file = logo_type = None
    if config.get("PORTAL_LOGO"):
        logo_url, logo_file, logo_type = read_logo(config["PORTAL_LOGO"])
    digest = hashlib.sha256(
        f"{colour}|{logo_url}".encode() + (logo_file or b"")).hexdigest()[:12]
    return Brand(colour, dark, logo_url, logo_file, logo_type, digest)


def logo_origin(brand: Brand) -> Optional[str]:
    """The origin of an https logo, which the Content-Security-Policy must allow."""
    if not brand.logo_url:
        return None
    # read_logo checked it: https, a plain host and port, no user or password.
    return origin_of(brand.logo_url)
