"""The typed shapes of what a run stores: a unit's identity, a case snapshot, a findings entry, a unit record.

Records are JSON files (``results/runs/<case>/<variant>-seed<k>.json``) that
tables, plots and other tools read long after the run; a field renamed without
notice would silently empty a column. So every record is validated against
``UnitRecord`` when it is written and when it is read, and carries ``format``:
a record of another format is refused with what to run, never half-read.
Fields beyond the declared ones (a detector's extra metadata, say) are kept.
Records are read back as these models, not as dicts: a default the tables
rely on (a finding's severity, whether a paper case is counted) is declared
here once, and no reader repeats it with a value of its own.
"""

from __future__ import annotations

import json
import os
import stat
from typing import Annotated, Any, Literal, NamedTuple

import pydantic

from harness.cases.schema import Symptom

RECORD_FORMAT = 2  # 1: the unversioned records before this module; 2: `format` and these models


class _Open(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="allow")


class UnitId(NamedTuple):
    """What names a unit on disk: its case, variant and seed (the results) and its content key (the store)."""

    case: str
    variant: str
    seed: int
    key: str


def _defaults_if_null(value: Any) -> Any:
    # A block stored as null reads as the block with its defaults, as every table took it before these models.
    return {} if value is None else value


def _none_if_empty(value: Any) -> Any:
    # A case file's `paper: {}` is no paper row: the tables never counted an empty block as one.
    return None if value == {} else value


Logs = Annotated[dict[str, Any], pydantic.BeforeValidator(_defaults_if_null)]  # Keras's logs: metric name -> value
Number = int | float  # as stored: an int is not turned into a float that a table would print as 1.0


class FaultSnapshot(_Open):
    code: str
    layer: int | None = None
    note: str | None = None


class TruthSnapshot(_Open):
    faults: list[FaultSnapshot]


class SymptomSnapshot(_Open):
    kind: str
    value: Number | None = None
    on: Literal["train", "test"] = Symptom.model_fields["on"].default  # the case file omits it at its default


class OriginalSnapshot(_Open):
    """The numbers the original post or commit reported; any of them may be missing. The case file's
    ``harness.cases.schema.Original``, read leniently (ints stay ints for display): a field added there is
    added here."""

    epochs: int | None = None
    batch_size: int | None = None
    data: str | None = None
    loss_before: Number | None = None
    acc_before: Number | None = None
    loss_after: Number | None = None
    acc_after: Number | None = None


class PaperSnapshot(_Open):
    """The paper's row for a case it studied: its published cells per method, and whether its totals count it."""

    row: str | None = None
    X_is: str | None = None
    cells: dict[str, Any] = {}
    counted: bool = True  # the paper dropped one case from its totals; only that one says so


class KillDecision(_Open):
    """A mutant's kill decision (``harness.scoring.judge``) as its case keeps it; ``train`` is the same test
    on the final training epoch, kept beside a decision taken on test rows."""

    killed: bool = False
    on: Literal["train", "test"] = "train"
    metric: str | None = None
    base: Any = None  # the program's metric per seed, shown as stored
    mutant: Any = None
    p_value: Any = None
    effect_size: Any = None
    seeds: int | None = None
    crashed: str | None = None
    train: KillDecision | None = None


class GeneratedSnapshot(_Open):
    """A mutant's origin: its healthy program, the operator that made it, and its kill decision once decided."""

    base: str | None = None
    operator: str | None = None
    metric: str | None = None
    kill: KillDecision | None = None


class CaseSnapshot(_Open):
    """What tables need about a case, frozen into each record (a case file may change after the run)."""

    id: str
    status: str  # no default here: a snapshot always names it (``harness.cases.schema.Case`` has the default)
    truth: TruthSnapshot
    symptom: SymptomSnapshot
    version: int | str | None = None
    path: str | None = None
    title: str | None = None
    task: str | None = None
    status_reason: str | None = None
    source: dict | None = None
    original: Annotated[OriginalSnapshot, pydantic.BeforeValidator(_defaults_if_null)] = OriginalSnapshot()
    paper: Annotated[PaperSnapshot | None, pydantic.BeforeValidator(_none_if_empty)] = None
    generated: GeneratedSnapshot | None = None


class StoredFinding(_Open):
    """One finding as stored (``detectors.base.Finding.to_dict``): the fields tables read."""

    detector: str
    code: str
    message: str
    step: int = pydantic.Field(ge=0)
    epoch: int = pydantic.Field(ge=0)
    seconds: float
    severity: Literal["error", "warning"] = "error"  # findings stored before severities existed were errors
    layer: int | None = None
    batch: int | None = None
    layer_name: str | None = None
    diagnosis: str | None = None
    fix_code: str | None = None

    @property
    def is_error(self) -> bool:
        """Whether it counts as a detection (a warning never does), as ``detectors.base.Finding.is_error``."""
        return self.severity == "error"


class FindingsEntry(_Open):
    """One detector's findings on one trace, remembered beside the trace under the detector's fingerprint."""

    fingerprint: str
    findings: list[StoredFinding]
    version: int | str
    localizes: bool
    suggests: bool


class Summary(_Open):
    """How a fit ended: the first and final epochs' logs, the held-out test scores when the case has test rows."""

    final: Logs = {}
    first: Logs = {}
    test: dict[str, Any] | None = None  # the test rows' logs, with their count `n` and constant-guess `reference`
    loss_nonfinite: bool | None = None
    epochs: int | None = None
    batches: int | None = None


class Machine(_Open):
    """Where a unit trained (the record's ``versions``): bits reproduce on the same CPU and library versions."""

    cpu: str | None = None
    machine: str | None = None
    cpu_isa: str | None = None
    keras: str | None = None
    numpy: str | None = None


class DataInfo(_Open):
    source: str | None = None


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
    cached: bool = False  # trained by an earlier run: found in the store
    semantics: str | None = None
    summary: Summary | None = None  # none when the unit failed before an epoch ended
    facts: dict | None = None
    data: Annotated[DataInfo, pydantic.BeforeValidator(_defaults_if_null)] = DataInfo()
    versions: Annotated[Machine, pydantic.BeforeValidator(_defaults_if_null)] = Machine()
    fit_seconds: Number | None = None
    layers: list[str | None] | None = None  # each layer's class, for the fused view of localization
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
