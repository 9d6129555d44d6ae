"""Errors a user can fix. The CLI prints them as one clear message, no traceback."""


class CapacitarError(Exception):
    """A problem in the user's files or configuration, with what to fix."""


class ConfigError(CapacitarError):
    """A program or instrument file is invalid."""


class SourceError(CapacitarError):
    """One input file cannot be read as configured; other files still go on."""
