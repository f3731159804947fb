"""The one error type every layer raises for problems a user can fix.

The CLI turns it into a one-line message plus hint and a non-zero exit code; the server refuses to start
with the same text. Keeping message and hint apart lets each surface render them its own way.
"""

from __future__ import annotations


class AegraError(Exception):
    """A problem with a clear cause and a clear fix."""

    exit_code = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(AegraError):
    """aegra.json is missing, unreadable or invalid, or a graph in it cannot be loaded."""


def not_utf8(path: object, exc: UnicodeDecodeError) -> ConfigError:
    return ConfigError(f"{path} is not UTF-8 text (byte {exc.start} cannot be read)", "save it as UTF-8")


class DatabaseError(AegraError):
    """The database cannot be reached or migrated."""


class UsageError(AegraError):
    """Options that contradict each other; exit code 2, like a parse error."""

    exit_code = 2
