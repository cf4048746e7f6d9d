"""Find, load and validate case files; resolve a case's buggy and patched specs."""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os

import pydantic

from harness.cases import schema
from harness.cases.patch import PatchError, apply_patch
from harness.cases.yamlfile import line_of, load_yaml
from harness.data import files as data_files
from harness.errors import CaseError, CaseFileError

VARIANTS = ("buggy", "patched")


@dataclasses.dataclass(frozen=True)
class LoadedCase:
    """A validated case with its file, its line map and both variant specs."""

    path: str
    case: schema.Case
    raw: dict
    lines: dict

    @property
    def id(self) -> str:
        return self.case.id

    @property
    def variants(self) -> tuple[str, ...]:
        """What is trained: both variants of a pair; a healthy program once, as its patched (healthy) variant."""
        return ("patched",) if self.case.status == "healthy" else VARIANTS

    def spec(self, variant: str) -> schema.Spec:
        return self.specs[variant]

    @functools.cached_property
    def specs(self) -> dict[str, schema.Spec]:
        return _variant_specs(self.path, self.raw, self.lines)

    def spec_dict(self, variant: str) -> dict:
        """The variant spec as plain data (what a worker process receives).

        A data file is given by its absolute path and content hash, so that a
        worker finds it and an edited file changes the unit's cache key.
        """
        spec = self.spec(variant).model_dump(mode="json")
        data = spec["data"]
        if data["source"] in data_files.FILE_SOURCES:
            path = data_files.resolve(self.path, data["params"]["path"])
            data["params"] = dict(data["params"], path=path, sha256=data_files.digest(path))
        return spec


def discover(root: str = "cases") -> list[str]:
    """Every case file under ``root`` (a folder) or ``root`` itself (a file)."""
    if os.path.isfile(root):
        return [root]
    found = []
    for folder, dirs, names in os.walk(root):  # never into a linked folder: a link to / is the whole disk
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        found += [os.path.join(folder, n) for n in names + dirs if n.endswith(".yaml") and n[0] not in "._"]
        dirs[:] = [d for d in dirs if not os.path.islink(os.path.join(folder, d))]  # a `*.yaml` folder: an error
    return sorted(found)


def load_case(path: str) -> LoadedCase:
    """Load and validate one case; raise CaseFileError listing every problem."""
    data, lines = load_yaml(path)
    if not isinstance(data, dict):
        raise CaseFileError([CaseError(path, 1, "a case file is a YAML mapping")])
    _finite_numbers(path, data, lines)
    try:
        case = schema.Case.model_validate(data)
    except pydantic.ValidationError as exc:
        raise CaseFileError(_pydantic_errors(path, exc, lines)) from None
    loaded = LoadedCase(path, case, data, lines)
    _ = loaded.specs  # validate the patched spec now, with the patch's line
    return loaded


def load_cases(paths: list[str]) -> tuple[list[LoadedCase], list[CaseError]]:
    """Load every path; bad files become errors and the rest still load."""
    cases, errors, seen = [], [], {}
    for path in paths:
        try:
            loaded = load_case(path)
        except CaseFileError as exc:
            errors.extend(exc.errors)
            continue
        if loaded.id in seen:
            line = line_of(loaded.lines, ("id",))
            errors.append(CaseError(path, line, f"duplicate case id '{loaded.id}' (also in {seen[loaded.id]})"))
            continue
        seen[loaded.id] = path
        cases.append(loaded)
    return cases, errors


def select(cases: list[LoadedCase], ids: list[str] | None) -> list[LoadedCase]:
    """The cases named in ``ids`` (all when empty); unknown ids raise with suggestions."""
    if not ids:
        return cases
    by_id = {c.id: c for c in cases}
    unknown = [i for i in ids if i not in by_id]
    if unknown:
        hints = [_suggest(i, by_id) for i in unknown]
        raise KeyError("unknown case id: " + "; ".join(f"'{i}'{h}" for i, h in zip(unknown, hints)))
    return [by_id[i] for i in ids]


def _finite_numbers(path: str, data: dict, lines: dict) -> None:
    """Refuse NaN and infinities in what trains (``.nan`` would reach Keras as null, i.e. its default).

    The paper's published numbers (``original``, ``paper``) may be NaN: a loss that diverged.
    """
    todo = [((key,), data[key]) for key in (*schema.SPEC_KEYS, "patch") if key in data]
    while todo:
        where, value = todo.pop()
        if isinstance(value, float) and not math.isfinite(value):
            dotted = ".".join(str(p) for p in where)
            raise CaseFileError([CaseError(path, line_of(lines, where), f"{dotted}: {value} is not a finite "
                                           "number (NaN and infinities are not training settings)")])
        items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
        todo.extend((where + (k,), v) for k, v in items)


def _variant_specs(path: str, raw: dict, lines: dict) -> dict[str, schema.Spec]:
    base = {k: raw[k] for k in schema.SPEC_KEYS if k in raw}
    specs = {"buggy": schema.Spec.model_validate(base)}
    if raw.get("status") == "healthy":
        return {"buggy": specs["buggy"], "patched": specs["buggy"]}  # one program: no patch
    try:
        patched = apply_patch(base, raw["patch"])
    except PatchError as exc:
        raise CaseFileError([CaseError(path, line_of(lines, ("patch", exc.index)), str(exc))]) from None
    try:
        specs["patched"] = schema.Spec.model_validate(patched)
    except pydantic.ValidationError as exc:
        errs = _pydantic_errors(path, exc, lines, prefix="the patched spec: ")
        line = line_of(lines, ("patch",))
        raise CaseFileError([dataclasses.replace(e, line=line) for e in errs]) from None
    cap = raw.get("allow_large_budget") is not True
    if cap and specs["patched"].fit.epochs > schema.MAX_EPOCHS:
        raise CaseFileError([CaseError(path, line_of(lines, ("patch",)), f"the patched spec: fit.epochs="
                                       f"{specs['patched'].fit.epochs} exceeds {schema.MAX_EPOCHS}; set "
                                       "'allow_large_budget: true' if you mean it")])
    if specs["patched"] == specs["buggy"]:
        raise CaseFileError([CaseError(path, line_of(lines, ("patch",)), "the patch changes nothing")])
    for variant, spec in specs.items():
        data = spec.data
        if data.source in data_files.FILE_SOURCES:
            try:
                resolved = data_files.resolve(path, str(data.params.get("path", "")))
            except ValueError as exc:
                where = ("data", "params", "path") if variant == "buggy" else ("patch",)
                raise CaseFileError([CaseError(path, line_of(lines, where), str(exc))]) from None
            if data.source == "file.py":
                _check_generator(path, lines, resolved, data.params, variant)
    return specs


def _check_generator(path: str, lines: dict, code: str, params: dict, variant: str) -> None:
    """A generator's problems, found by reading it (it is never run to load or validate a case)."""
    from harness.data.generator_check import generator_problems

    where = ("data", "params") if variant == "buggy" else ("patch",)
    problems = generator_problems(code, str(params.get("function", "make")), params.get("args") or {})
    errors = [CaseError(code, line, message) if in_file else
              CaseError(path, line_of(lines, where), f"{os.path.basename(code)}: {message}")
              for line, message, in_file in problems]
    if errors:
        raise CaseFileError(errors)


def _pydantic_errors(path: str, exc: pydantic.ValidationError, lines: dict, prefix: str = "") -> list[CaseError]:
    out = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        where = ".".join(str(p) for p in loc) or "(top level)"
        if err["type"] == "extra_forbidden":
            key = loc[-1]
            msg = f"unknown key '{key}'{_suggest(str(key), schema.field_names())}"
        elif err["type"] == "missing":
            msg = f"missing required key '{where}'"
        else:
            detail = err["msg"].removeprefix("Value error, ")
            msg = f"{where}: {detail}"
        out.append(CaseError(path, line_of(lines, loc), prefix + msg))
    return out


def _suggest(word: str, choices) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.7)
    return f" (did you mean '{close[0]}'?)" if close else ""
