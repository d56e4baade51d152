"""Typed errors. Library code raises these; the CLI boundary (cli.main) turns them into a
message on stderr and an exit code. Messages name the file, line and field, never the data."""

from __future__ import annotations

EXIT_OK = 0
EXIT_DATA = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class EhrkitError(Exception):
    """Base class: a message safe to show (no patient data) and an optional hint."""

    exit_code = EXIT_DATA

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint


class DataError(EhrkitError):
    """Input records are malformed or lack what the command needs (exit 1)."""


class InputFormatError(DataError):
    """A file's format cannot be read as the format it claims or was given."""


class MissingFieldError(DataError):
    """A record lacks a field the command needs."""

    def __init__(self, source: str, field: str, available: list[str], option: str | None = None):
        shown = ", ".join(available) if available else "(none)"
        hint = f"choose another field with {option}" if option else None
        super().__init__(f"{source}: field '{field}' not found; fields present: {shown}", hint)
        self.field = field


class UsageError(EhrkitError):
    """The command line is wrong: bad option value, conflicting flags (exit 2)."""

    exit_code = EXIT_USAGE
