"""The typed shapes of what a run stores: a unit's identity, a case snapshot, a findings entry, a unit record.

Records are JSON files (``results/runs/<case>/<variant>-seed<k>.json``) that
tables, plots and other tools read long after the run; a field renamed without
notice would silently empty a column. So every record is validated against
``UnitRecord`` when it is written and when it is read, and carries ``format``:
a record of another format is refused with what to run, never half-read.
Fields beyond the declared ones (a detector's extra metadata, say) are kept.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Literal, NamedTuple

import pydantic

RECORD_FORMAT = 2  # 1: the unversioned records before this module; 2: `format` and these models


class _Open(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


class UnitId(NamedTuple):
    """What names a unit on disk: its case, variant and seed (the results) and its content key (the store)."""

    case: str
    variant: str
    seed: int
    key: str


class CaseSnapshot(_Open):
    """What tables need about a case, frozen into each record (a case file may change after the run)."""

    id: str
    status: str
    truth: dict
    symptom: dict
    version: int | str | None = None
    path: str | None = None
    title: str | None = None
    task: str | None = None
    status_reason: str | None = None
    source: dict | None = None
    original: dict | None = None
    paper: dict | None = None
    generated: dict | None = None


class StoredFinding(_Open):
    """One finding as stored (``detectors.base.Finding.to_dict``): the fields tables read without a default."""

    detector: str
    code: str
    message: str
    step: int = pydantic.Field(ge=0)
    epoch: int = pydantic.Field(ge=0)
    seconds: float
    severity: Literal["error", "warning"] = "error"
    layer: int | None = None
    batch: int | None = None


def is_error(finding: dict) -> bool:
    """Whether a stored finding counts as a detection: the one reading of its severity (``StoredFinding``'s default
    is an error, as findings stored before severities existed were)."""
    return finding.get("severity", "error") == "error"


class FindingsEntry(_Open):
    """One detector's findings on one trace, remembered beside the trace under the detector's fingerprint."""

    fingerprint: str
    findings: list[StoredFinding]
    version: int | str
    localizes: bool
    suggests: bool


class UnitRecord(_Open):
    """A unit's result: identity, how it trained (or why it failed), and every detector's findings."""

    format: Literal[RECORD_FORMAT] = RECORD_FORMAT
    case: CaseSnapshot
    variant: Literal["buggy", "patched"]
    seed: int = pydantic.Field(ge=0)
    key: str | None = None
    status: Literal["ok", "error"]
    error: str | None = None
    trace: str | None = None
    summary: dict | None = None
    facts: dict | None = None
    detectors: list[str] = []
    findings: dict[str, list[StoredFinding]] = {}
    localizes: dict[str, bool] = {}
    suggests: dict[str, bool] = {}

    @pydantic.model_validator(mode="after")
    def _ok_has_a_trace(self):
        if self.status == "ok" and not self.trace:
            raise ValueError("a record with status ok names its trace")
        return self


class RecordFormatError(ValueError):
    """A stored record of a format this version does not read."""


def check_format(data: dict, where: str) -> None:
    found = data.get("format", 1) if isinstance(data, dict) else None
    if found != RECORD_FORMAT:
        raise RecordFormatError(
            f"{where}: result format {found}, this bugbench reads format {RECORD_FORMAT}; "
            "rerun `bugbench run` (or `make tables`) to rewrite the results from the cache")


MAX_STORED_JSON = 16 * 2**20  # records and findings files are tens of kB; anything far bigger is not ours


class StoredFileError(ValueError):
    """A stored JSON file that is no regular file, too large, or not JSON (the message says which)."""


def read_json(path: str, limit: int = MAX_STORED_JSON):
    """The parsed content of a stored JSON file, read without ever blocking or reading without bound.

    Opened non-blocking and checked on the open descriptor: a FIFO or a device
    (a link to /dev/zero) named ``*.json`` is refused, never read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as exc:
        raise StoredFileError(exc.strerror or str(exc)) from None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise StoredFileError("not a regular file")
        raw = fh.read(limit + 1)
    if len(raw) > limit:
        raise StoredFileError(f"larger than {limit // 2**20} MB")
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise StoredFileError(f"not JSON ({exc})") from None
