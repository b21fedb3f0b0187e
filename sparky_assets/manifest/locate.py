"""Map TOML key paths to their line and column.

``tomllib`` gives values but no positions, so this scanner reads the text once and
records where every key is written: ``project.palette``, ``sprite[2].size``,
``sprite[0].animations.idle``, ``export.godot.project``. Array-of-tables entries are
numbered from 0 in file order. Positions are 1-based. Unknown paths fall back to their
nearest recorded parent, so every diagnostic gets the best location there is.
"""

from __future__ import annotations

import re

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY = re.compile(
    r"""^(\s*)((?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*')(?:\s*\.\s*(?:[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'))*)\s*="""
)
_INLINE_KEY = re.compile(r"""([{,]\s*)([A-Za-z0-9_\-]+|"[^"]*")\s*=""")


def _split_dotted(key: str) -> list[str]:
    parts = re.findall(r"""[A-Za-z0-9_\-]+|"[^"]*"|'[^']*'""", key)
    return [p[1:-1] if p[:1] in "\"'" else p for p in parts]


class KeyLocator:
    """Positions of keys in one TOML document."""

    def __init__(self, text: str):
        self.positions: dict[str, tuple[int, int]] = {}
        counts: dict[str, int] = {}
        prefix = ""
        open_quote: str | None = None  # inside a multi-line string: nothing here is a key
        for lineno, line in enumerate(text.splitlines(), start=1):
            if open_quote is not None:
                if line.count(open_quote) % 2 == 1:
                    open_quote = None
                continue
            for quote in ('"""', "'''"):
                if line.count(quote) % 2 == 1:
                    open_quote = quote
                    break
            header = _HEADER.match(line)
            if header and not line.lstrip().startswith("#"):
                name = ".".join(_split_dotted(header.group(2)))
                col = line.index("[") + 1
                if header.group(1) == "[[":
                    index = counts.get(name, 0)
                    counts[name] = index + 1
                    prefix = f"{name}[{index}]"
                else:
                    # a sub-table of the latest array entry: [sprite.pixelize] after [[sprite]]
                    head, _, rest = name.partition(".")
                    if head in counts and rest:
                        prefix = f"{head}[{counts[head] - 1}].{rest}"
                    else:
                        prefix = name
                self.positions.setdefault(prefix, (lineno, col))
                continue
            key = _KEY.match(line)
            if not key:
                continue
            path = ".".join(filter(None, [prefix, *_split_dotted(key.group(2))]))
            self.positions.setdefault(path, (lineno, len(key.group(1)) + 1))
            rest_start = key.end()
            for inline in _INLINE_KEY.finditer(line, rest_start):
                inner = inline.group(2).strip("\"'")
                self.positions.setdefault(f"{path}.{inner}", (lineno, inline.start(2) + 1))

    def locate(self, path: str) -> tuple[int | None, int | None]:
        """Line and column of ``path`` or of its nearest located parent."""
        while path:
            if path in self.positions:
                return self.positions[path]
            cut = max(path.rfind("."), path.rfind("["))
            if cut <= 0:
                break
            path = path[:cut]
        return (None, None)
