"""Errors that point at a file and line, and their collection."""

from __future__ import annotations

import dataclasses


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
