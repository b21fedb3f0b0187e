"""Diagnostics and exit codes shared by every stage.

A :class:`Diagnostic` is one problem with a location (file, line, column, key path),
the sprite and stage it belongs to, what was expected and what was found, and a
suggestion. Stages collect diagnostics and raise one :class:`SparkyError` holding
all of them, so a user sees every problem at once.

Exit codes (documented in the README):

* ``0`` — success
* ``1`` — a build step failed (generation, I/O, an internal error)
* ``2`` — invalid input (manifest, palette, source image, stale lock under ``--frozen``)
* ``3`` — another build holds the project lock
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

EXIT_OK = 0
EXIT_BUILD_FAILED = 1
EXIT_INVALID_INPUT = 2
EXIT_LOCKED = 3


@dataclass(frozen=True)
class Diagnostic:
    """One problem, located as precisely as the stage that found it can."""

    message: str
    file: str | None = None
    line: int | None = None
    column: int | None = None
    key: str | None = None
    sprite: str | None = None
    stage: str | None = None
    expected: str | None = None
    found: str | None = None
    hint: str | None = None

    def format(self) -> str:
        """``file:line:col: key: message (expected X, found Y) — hint``."""
        loc = ""
        if self.file:
            loc = self.file
            if self.line is not None:
                loc += f":{self.line}"
                if self.column is not None:
                    loc += f":{self.column}"
            loc += ": "
        text = loc
        if self.key:
            text += f"{self.key}: "
        text += self.message
        if self.expected is not None or self.found is not None:
            parts = []
            if self.expected is not None:
                parts.append(f"expected {self.expected}")
            if self.found is not None:
                parts.append(f"found {self.found}")
            text += f" ({', '.join(parts)})"
        if self.hint:
            text += f" — {self.hint}"
        if self.sprite and (not self.key or self.sprite not in self.key):
            text += f" [sprite {self.sprite}]"
        if self.stage and self.stage not in ("manifest",):
            text += f" [{self.stage}]"
        return printable(text)

    def to_dict(self) -> dict:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "key": self.key,
            "sprite": self.sprite,
            "stage": self.stage,
            "message": self.format_message(),
        }

    def format_message(self) -> str:
        """The message without the location prefix (for structured outputs)."""
        return Diagnostic(self.message, key=None, expected=self.expected, found=self.found, hint=self.hint).format()


_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029]")


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\x00``, ``\\x1b``): a name or value
    from the user never reaches the terminal raw (no NUL, no escape sequences)."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class SparkyError(Exception):
    """One or more diagnostics plus the exit code they map to."""

    exit_code = EXIT_BUILD_FAILED

    def __init__(self, diagnostics: Diagnostic | Sequence[Diagnostic] | str):
        if isinstance(diagnostics, str):
            diagnostics = [Diagnostic(diagnostics)]
        elif isinstance(diagnostics, Diagnostic):
            diagnostics = [diagnostics]
        self.diagnostics: list[Diagnostic] = list(diagnostics)
        super().__init__("\n".join(d.format() for d in self.diagnostics))


class InvalidInput(SparkyError):
    """The user's input is wrong: manifest, palette file, source image, stale lock."""

    exit_code = EXIT_INVALID_INPUT


class BuildFailed(SparkyError):
    """A build step failed for a reason other than bad input."""

    exit_code = EXIT_BUILD_FAILED


class ProjectLocked(SparkyError):
    """Another build of the same project is running."""

    exit_code = EXIT_LOCKED


def raised_by_an_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while a Ctrl-C was unwinding the stack (library code
    cleaning up after an interrupt can fail in turn: CPython 3.11's ``shutil.rmtree``
    closes a descriptor twice when interrupted between ``close`` and its bookkeeping).
    Such an error is the interrupt (the CLI's exit code 130), not a failed build."""
    seen = set()
    while exc is not None and id(exc) not in seen:
        if isinstance(exc, KeyboardInterrupt):
            return True
        seen.add(id(exc))
        exc = exc.__context__
    return False


def suggest(word: str, choices: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the closest choice, or None."""
    choices = list(choices)
    close = difflib.get_close_matches(word, choices, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower().replace("-", "").replace("_", ""): c for c in choices}
        key = word.lower().replace("-", "").replace("_", "")
        if key in lowered:
            close = [lowered[key]]
    return f"did you mean '{close[0]}'?" if close else None


@dataclass
class DiagnosticSink:
    """Collects diagnostics during validation; :meth:`raise_if_any` aborts once."""

    diagnostics: list[Diagnostic] = field(default_factory=list)

    def add(self, diagnostic: Diagnostic) -> None:
        self.diagnostics.append(diagnostic)

    def __bool__(self) -> bool:
        return bool(self.diagnostics)

    def raise_if_any(self, error_type: type[SparkyError] = InvalidInput) -> None:
        if self.diagnostics:
            raise error_type(self.diagnostics)


_TOML_POSITION = re.compile(r"\s*\(at (?:line (\d+), column (\d+)|end of document)\)")


def toml_error_position(exc: ValueError, text: str) -> tuple[str, int | None, int | None]:
    """``tomllib``'s error as (message, line, column): its "(at line L, column C)" taken
    out of the message, and "(at end of document)" (an unterminated string or table, a
    half-saved file) as the position just after the last character."""
    message = str(exc)
    match = _TOML_POSITION.search(message)
    if not match:
        return message, None, None
    message = (message[: match.start()] + message[match.end() :]).strip()
    if match.group(1):
        return message, int(match.group(1)), int(match.group(2))
    lines = text.split("\n")
    return message, len(lines), len(lines[-1]) + 1
