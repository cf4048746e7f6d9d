"""Safe YAML loading that remembers the line of every key and list item.

Plain ``yaml.safe_load`` forgets where values came from; validation errors must
name the line, so the document is composed once with the safe loader and both
the Python value and a map from key path to line are read off the node tree.
"""

from __future__ import annotations

import yaml

from harness.errors import CaseError, CaseFileError

Path = tuple  # a key path such as ("model", "layers", 0, "Dense", "units")

MAX_BYTES = 1_000_000  # a case is a page of YAML; anything bigger is a mistake

# libyaml's safe loader parses ~10x faster and keeps the same marks and tag rules.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_yaml(path: str) -> tuple[object, dict[Path, int]]:
    """Return the document at ``path`` and a ``{key path: 1-based line}`` map.

    Raises CaseFileError (with the line) on syntax errors and on any tag the
    safe loader refuses, such as ``!!python/object``.
    """
    with open(path, "rb") as fh:
        raw = fh.read(MAX_BYTES + 1)
    if len(raw) > MAX_BYTES:
        raise CaseFileError([CaseError(path, None, f"file is larger than {MAX_BYTES} bytes")])
    try:
        text = raw.decode("utf-8")
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except UnicodeDecodeError as exc:
        raise CaseFileError([CaseError(path, None, f"not UTF-8 text ({exc.reason})")]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise CaseFileError([CaseError(path, line, f"invalid YAML: {msg}")]) from None
    lines: dict[Path, int] = {}
    if node is not None:
        _collect_lines(node, (), lines)
    return data, lines


def _collect_lines(node: yaml.Node, prefix: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = key_node.value
            lines[prefix + (key,)] = key_node.start_mark.line + 1
            _collect_lines(value_node, prefix + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _collect_lines(item, prefix + (i,), lines)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its closest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
