"""Apply a case's patch (a list of edits) to its buggy spec.

Paths are dotted keys; integers index lists: ``model.layers.1.Dense.activation``.
``set`` replaces or adds a value, ``delete`` removes a key or list item,
``insert`` puts a new list item at an index (``len`` appends).
"""

from __future__ import annotations

import copy
from typing import Any


class PatchError(ValueError):
    """An edit whose path does not fit the spec; ``index`` is the edit's position."""

    def __init__(self, index: int, message: str):
        self.index = index
        super().__init__(message)


def apply_patch(spec: dict, edits: list[dict]) -> dict:
    """Return a patched deep copy of ``spec``; ``spec`` itself is left alone."""
    out = copy.deepcopy(spec)
    for i, edit in enumerate(edits):
        try:
            _apply_one(out, edit)
        except (KeyError, IndexError, TypeError, ValueError) as exc:
            raise PatchError(i, f"patch edit {i}: {exc}") from None
    return out


def _apply_one(root: dict, edit: dict) -> None:
    if edit.get("set") is not None:
        parent, key = _walk(root, edit["set"], create=True)
        parent[key] = copy.deepcopy(edit.get("to"))
    elif edit.get("delete") is not None:
        parent, key = _walk(root, edit["delete"])
        _check_exists(parent, key, edit["delete"])
        del parent[key]
    elif edit.get("insert") is not None:
        parent, key = _walk(root, edit["insert"])
        if not isinstance(parent, list) or not 0 <= key <= len(parent):
            raise ValueError(f"'{edit['insert']}' is not a list position")
        parent.insert(key, copy.deepcopy(edit.get("value")))
    else:
        raise ValueError("edit has no operation")


def _walk(root: Any, path: str, create: bool = False) -> tuple[Any, Any]:
    parts = [int(p) if p.lstrip("-").isdigit() else p for p in path.split(".")]
    node = root
    for depth, part in enumerate(parts[:-1]):
        where = ".".join(str(p) for p in parts[: depth + 1])
        if isinstance(node, list):
            if not isinstance(part, int) or not 0 <= part < len(node):
                raise ValueError(f"'{where}' is not an index of a list of {len(node)} items")
            node = node[part]
        elif isinstance(node, dict):
            if part not in node:
                if not create:
                    raise ValueError(f"'{where}' does not exist")
                node[part] = {}
            node = node[part]
        else:
            raise ValueError(f"'{where}' is a value, not a mapping or list")
    last = parts[-1]
    if isinstance(node, list) and not isinstance(last, int):
        raise ValueError(f"'{path}' indexes a list with '{last}'")
    if isinstance(node, list) and create and not 0 <= last < len(node):
        raise ValueError(f"'{path}' is out of range for a list of {len(node)} items")
    if not isinstance(node, (list, dict)):
        raise ValueError(f"'{path}' goes through a value, not a mapping or list")
    return node, last


def _check_exists(parent: Any, key: Any, path: str) -> None:
    missing = key not in parent if isinstance(parent, dict) else not 0 <= key < len(parent)
    if missing:
        raise ValueError(f"'{path}' does not exist")
