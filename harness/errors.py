"""Errors that point at a file and line, and their collection."""

from __future__ import annotations

import dataclasses
import os


@dataclasses.dataclass(frozen=True)
class CaseError:
    """One problem in a case file, printed as ``file:line: message``."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else self.path
        return f"{where}: {self.message}"


class CaseFileError(Exception):
    """Raised with every problem found in one or more case files."""

    def __init__(self, errors: list[CaseError]):
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


class WriteFailed(Exception):
    """A file the run must keep could not be written (disk full, a read-only folder): the run stops there.

    Every file is written atomically, so what was written before stays whole;
    ``kept`` is set by the runner to the number of units recorded before.
    """

    def __init__(self, path: str, error: OSError):
        self.folder = os.path.dirname(path) or "."
        self.reason = error.strerror or str(error)
        self.kept: int | None = None
        super().__init__(f"cannot write to {self.folder}: {self.reason}")
