"""Whether a case's own code (a ``file.py`` data generator) may run: only with the user's consent.

Consent comes in three ways, checked in this order:

1. ``--trust-case-code`` on the command line: for every case of that run;
2. the project's own generators (cases/, zoo/), trusted by the content hashes
   committed in ``bundled_code.sha256`` beside this module (a file with the same
   bytes is the same code, wherever it lies);
3. ``bugbench trust PATH``: the user's trust file (``$BUGBENCH_TRUST_FILE``, else
   ``$XDG_CONFIG_HOME/bugbench/trusted.json``, else ``~/.config/bugbench/trusted.json``)
   records each generator's real path and hash; an edited file is no longer trusted.

The trust file lives with the user, never in a case folder: a folder cannot
vouch for itself.
"""

from __future__ import annotations

import json
import os

BUNDLED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bundled_code.sha256")
FLAG = "--trust-case-code"


def trust_file() -> str:
    if os.environ.get("BUGBENCH_TRUST_FILE"):
        return os.environ["BUGBENCH_TRUST_FILE"]
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return os.path.join(base, "bugbench", "trusted.json")


def bundled_hashes() -> set[str]:
    """The hashes of the project's own generators (``sha256  path`` per line, as ``sha256sum`` writes)."""
    try:
        with open(BUNDLED) as fh:
            return {line.split()[0] for line in fh if line.strip() and not line.startswith("#")}
    except OSError:
        return set()


def trusted_by_user() -> dict[str, str]:
    try:
        with open(trust_file()) as fh:
            files = json.load(fh).get("files", {})
    except (OSError, ValueError, AttributeError):
        return {}
    return {str(k): str(v) for k, v in files.items()} if isinstance(files, dict) else {}


def refusal(path: str, sha256: str | None, flag: bool) -> str | None:
    """None when the code at ``path`` (with content ``sha256``) may run; else why not and how to allow it."""
    if flag or (sha256 and sha256 in bundled_hashes()):
        return None
    recorded = trusted_by_user().get(os.path.realpath(path))
    if recorded and recorded == sha256:
        return None
    why = "changed since you trusted it" if recorded else "is case code the user has not trusted"
    return (f"{path} {why}; it was not run. Read it, then rerun with {FLAG}, or record it with "
            f"`bugbench trust {os.path.dirname(path)}`")


def trust(paths: list[str]) -> list[tuple[str, str]]:
    """Record the generators of the cases under ``paths`` (their .py files) as trusted; return (path, hash)."""
    from harness.data.files import digest

    found = []
    for root in paths:
        walk = os.walk(root) if os.path.isdir(root) else [(os.path.dirname(root), [], [os.path.basename(root)])]
        for folder, _, names in walk:
            found += [os.path.realpath(os.path.join(folder, n)) for n in sorted(names) if n.endswith(".py")]
    entries = trusted_by_user()
    recorded = [(p, digest(p)) for p in found]
    entries.update(recorded)
    target = trust_file()
    os.makedirs(os.path.dirname(target), exist_ok=True)
    tmp = f"{target}.tmp{os.getpid()}"
    with open(tmp, "w") as fh:
        json.dump({"files": entries}, fh, indent=1, sort_keys=True)
    os.replace(tmp, target)
    return recorded
