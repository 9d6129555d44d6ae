"""Errors a user can fix. The CLI prints them as one clear message, no traceback."""

import errno


class CapacitarError(Exception):
    """A problem in the user's files or configuration, with what to fix."""


class ConfigError(CapacitarError):
    """A program or instrument file is invalid."""


class SourceError(CapacitarError):
    """One input file cannot be read as configured; other files still go on."""


class RunFailed(CapacitarError):
    """A run stopped for a reason the user can act on (message says which); nothing published."""


# Errors of the file system no retry fixes: the user must act (free space, permissions).
DISK_FULL = {errno.ENOSPC, getattr(errno, "EDQUOT", errno.ENOSPC)}
NOT_WRITABLE = {errno.EROFS, errno.EACCES, errno.EPERM}


def user_message(exc: BaseException) -> str | None:
    """One line for an error the user can fix, or None for anything else (a bug).

    >>> user_message(OSError(errno.ENOSPC, "No space left on device", "/p/outputs/x.csv"))
    'no space left on the disk writing /p/outputs/x.csv: free some space, then run again'
    >>> user_message(ValueError("x")) is None
    True
    """
    if isinstance(exc, CapacitarError):
        return str(exc)
    if isinstance(exc, OSError) and exc.errno in DISK_FULL | NOT_WRITABLE:
        where = exc.filename or "the outputs"
        if exc.errno in DISK_FULL:
            return f"no space left on the disk writing {where}: free some space, then run again"
        return (f"cannot write {where} ({exc.strerror}): capacitar needs to write in the "
                "program's output folder; check its permissions and that the disk is not "
                "read-only")
    return None
