"""The one definition of a valid sprite, atlas or animation name.

Names become file names (``<atlas>_<page>.png``, ``<sprite>.tres``,
``sparky-generated/<sprite>.<key12>.png``, …) and keys in engine metadata, so a valid
name is plain ASCII — letters, digits, ``_``, ``-`` and ``.``, not starting with ``.``
or ``-``, never ``..`` — matched against the *whole* string (``"hero\\n"`` is not
``hero``), and at most :data:`MAX_NAME_BYTES` bytes: with the longest suffix any
exporter or the generated store adds (:data:`LONGEST_SUFFIX`, well under 64 bytes)
every file name stays below the 255-byte limit of common file systems.
"""

from __future__ import annotations

import re

NAME_PATTERN = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-]*")
MAX_NAME_BYTES = 128
LONGEST_SUFFIX = "_65535.json"  # pages; longer than ".atlas.ron", ".tres" and the store's ".<key12>.png" (17)
NAME_RULE = f"letters, digits, '_', '-', '.' (not first), no '..', at most {MAX_NAME_BYTES} characters"


def name_problem(value: str) -> str | None:
    """Why ``value`` is not a valid name, or None when it is."""
    if not value:
        return "empty name"
    if len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES:
        return f"name is {len(value.encode('utf-8', 'surrogatepass'))} bytes long, more than {MAX_NAME_BYTES}"
    if "/" in value or "\\" in value:
        return "no path separators allowed"
    if ".." in value:
        return "'..' is not allowed"
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        return "control characters are not allowed"
    if not NAME_PATTERN.fullmatch(value):
        return "invalid characters in name"
    return None
