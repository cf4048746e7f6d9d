"""``bugbench new``: start a case from a template that explains every key.

The written file is a complete, valid case (checked before it is put in
place), so ``bugbench validate`` and ``bugbench run`` work on it at once and
the author replaces a working example rather than filling in blanks.
"""

from __future__ import annotations

import os
import re
from importlib import resources

import yaml

from harness.cases import schema
from harness.cases.load import discover

KINDS = ("stackoverflow", "github", "other")
# The id prefix of each kind; the file is named after the rest of the id, as the existing cases are.
PREFIX = {"stackoverflow": "so-", "github": "gh-"}
URL = {"stackoverflow": "https://stackoverflow.com/questions/{ref}"}


class ScaffoldError(Exception):
    """The case cannot be written; the message says why and what to do."""


def kind_of(case_id: str) -> str:
    """The source kind an id's prefix names; ``other`` when it names none."""
    return next((kind for kind, prefix in PREFIX.items() if case_id.startswith(prefix)), "other")


def case_path(case_id: str, kind: str, cases_dir: str = "cases") -> str:
    """``so-<post>`` -> stackoverflow/<post>.yaml, ``gh-<repo>`` -> github/<repo>.yaml, else other/<id>.yaml."""
    prefix = PREFIX.get(kind, "")
    name = case_id[len(prefix):] if prefix and case_id.startswith(prefix) else case_id
    return os.path.join(cases_dir, kind, f"{name}.yaml")


def render(case_id: str, kind: str) -> str:
    """The template with this case's id and source filled in."""
    ref = case_id[len(PREFIX[kind]):] if kind in PREFIX and case_id.startswith(PREFIX[kind]) else case_id
    if kind == "github":
        ref = f"OWNER/{ref}"  # the id keeps only the repository; the owner is for the author to add
    url = URL[kind].format(ref=ref) if kind in URL else "null"
    text = resources.files("harness.cases").joinpath("case_template.yaml").read_text(encoding="utf-8")
    for token, value in (("__ID__", case_id), ("__KIND__", kind), ("__REF__", ref), ("__URL__", url)):
        text = text.replace(token, value)
    return text


def existing_ids(cases_dir: str) -> dict[str, str]:
    """id -> file of every case under ``cases_dir``, broken files included when their id can be read."""
    ids = {}
    for path in discover(cases_dir) if os.path.isdir(cases_dir) else []:
        try:
            with open(path, encoding="utf-8") as fh:
                case_id = (yaml.safe_load(fh) or {}).get("id")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if isinstance(case_id, str):
            ids.setdefault(case_id, path)
    return ids


def check_id(case_id: str) -> None:
    pattern = schema.Case.model_json_schema()["properties"]["id"]["pattern"]
    if not re.fullmatch(pattern, case_id):
        raise ScaffoldError(f"'{case_id}' is not a case id: lower-case letters, digits and - _ . only, "
                            f"e.g. so-12345678 or gh-my-repo")


def new_case(case_id: str, cases_dir: str = "cases", kind: str | None = None, force: bool = False) -> str:
    """Write the case file for ``case_id``; return its path. ScaffoldError when it must not be written."""
    check_id(case_id)
    kind = kind or kind_of(case_id)
    if kind not in KINDS:
        raise ScaffoldError(f"unknown kind '{kind}' (one of {', '.join(KINDS)})")
    path = case_path(case_id, kind, cases_dir)
    if os.path.exists(path) and not force:
        raise ScaffoldError(f"{path} already exists; pass --force to overwrite it")
    clash = existing_ids(cases_dir).get(case_id)
    if clash and os.path.abspath(clash) != os.path.abspath(path):
        raise ScaffoldError(f"case id '{case_id}' is already used by {clash}; choose another id")
    _write_checked(path, render(case_id, kind))
    return path


def _write_checked(path: str, text: str) -> None:
    """Load the text as a case first: a file that is written is a valid case."""
    from harness.cases.writer import CaseWriteError, write_case_file

    try:
        write_case_file(path, text, replaces="anything")  # new_case has refused an existing file unless --force
    except CaseWriteError as exc:
        raise ScaffoldError(f"the template does not make a valid case for this id:\n{exc}") from None


def next_steps(case_id: str, path: str, cases_dir: str = "cases", prog: str = "bugbench") -> list[str]:
    """The commands to run after writing a case, in order."""
    where = "" if cases_dir == "cases" else f" --cases-dir {cases_dir}"
    return [
        f"{prog} validate {path}",
        f"{prog} run --case {case_id} --seeds 3{where}",
        f"{prog} show {case_id}{where}",
    ]
