"""Exceptions a user can act on. The CLI prints ``str(exc)`` on one line and exits with ``exit_code``."""

from __future__ import annotations


class VidrestoreError(Exception):
    """Base class: every error the CLI reports as one line."""

    exit_code = 1


class UsageError(VidrestoreError):
    """Bad command-line arguments or option combinations."""

    exit_code = 2


class InputError(VidrestoreError):
    """The input file is missing, unreadable, or not a usable video."""

    exit_code = 3


class OutputError(VidrestoreError):
    """The output cannot be written (exists, same as input, unwritable folder, encoder failure)."""

    exit_code = 4


class ModelError(VidrestoreError):
    """A model or weights file is missing, corrupt, or does not match its config."""

    exit_code = 5


class ConfigError(VidrestoreError):
    """A YAML config has unknown keys or values of the wrong type."""

    exit_code = 6
