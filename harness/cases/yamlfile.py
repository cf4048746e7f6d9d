"""Safe YAML loading that remembers the line of every key and list item.

Plain ``yaml.safe_load`` forgets where values came from; validation errors must
name the line, so the document is composed once with the safe loader and both
the Python value and a map from key path to line are read off the node tree.
"""

from __future__ import annotations

import os
import stat

import yaml

from harness.errors import CaseError, CaseFileError

Path = tuple  # a key path such as ("model", "layers", 0, "Dense", "units")

MAX_BYTES = 1_000_000  # a case is a page of YAML; anything bigger is a mistake

# libyaml's safe loader parses ~10x faster and keeps the same marks and tag rules.
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


MAX_NODES = 100_000  # a case has a few hundred; aliases that expand past this are a bomb, not a case
MAX_DEPTH = 50  # a case nests about 8 levels; far deeper only overflows recursive readers (pydantic, json)


def load_yaml(path: str) -> tuple[object, dict[Path, int]]:
    """Return the document at ``path`` and a ``{key path: 1-based line}`` map.

    Raises CaseFileError (with the line) on syntax errors, on any tag the safe
    loader refuses (such as ``!!python/object``), on duplicate keys, on aliases
    that expand past MAX_NODES, and on paths that are no regular file (a
    folder, a FIFO, a broken symlink): nothing is opened that could block.
    """
    text = _read_text(path)
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            if node is not None:
                _check_size(path, node)
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        msg = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        raise CaseFileError([CaseError(path, line, f"invalid YAML: {msg}")]) from None
    except yaml.YAMLError as exc:  # e.g. a NUL byte: the reader refuses it before any mark exists
        raise CaseFileError([CaseError(path, None, f"invalid YAML: {str(exc).splitlines()[0]}")]) from None
    lines: dict[Path, int] = {}
    if node is not None:
        _collect_lines(path, node, (), lines)
    return data, lines


def _read_text(path: str) -> str:
    try:
        info = os.stat(path)
    except FileNotFoundError:
        what = "a broken symbolic link" if os.path.islink(path) else "missing"
        raise CaseFileError([CaseError(path, None, f"cannot read: {what}")]) from None
    except OSError as exc:
        raise CaseFileError([CaseError(path, None, f"cannot read: {exc.strerror}")]) from None
    if not stat.S_ISREG(info.st_mode):
        kind = "a folder" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise CaseFileError([CaseError(path, None, f"cannot read: {kind}")])
    if info.st_size > MAX_BYTES:
        raise CaseFileError([CaseError(path, None, f"file is larger than {MAX_BYTES} bytes")])
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_BYTES + 1)
    except OSError as exc:
        raise CaseFileError([CaseError(path, None, f"cannot read: {exc.strerror}")]) from None
    if len(raw) > MAX_BYTES:
        raise CaseFileError([CaseError(path, None, f"file is larger than {MAX_BYTES} bytes")])
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise CaseFileError([CaseError(path, None, f"not UTF-8 text ({exc.reason})")]) from None


def _check_size(path: str, root: yaml.Node) -> None:
    """Refuse a document whose aliases expand to more than MAX_NODES nodes (counted without expanding), or
    that nests deeper than MAX_DEPTH (checked here, so that no recursive reader ever sees it)."""
    sizes: dict[int, int] = {}
    heights: dict[int, int] = {}
    open_: set[int] = set()  # nodes whose children are being counted: meeting one again is a cycle
    stack = [(root, False)]
    while stack:  # post-order, each distinct node once: linear in the file, whatever the aliases
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        kids = _children(node)
        if not children_done:
            if any(id(k) in open_ or k is node for k in kids):
                raise CaseFileError([CaseError(path, node.start_mark.line + 1, "a recursive alias (a value that "
                                               "contains itself)")])
            open_.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in sizes)
            continue
        open_.discard(id(node))
        sizes[id(node)] = 1 + sum(sizes.get(id(k), 0) for k in kids)
        heights[id(node)] = 1 + max((heights.get(id(k), 0) for k in kids), default=0)
        if heights[id(node)] > MAX_DEPTH:
            raise CaseFileError([CaseError(path, node.start_mark.line + 1, f"values nested more than {MAX_DEPTH} "
                                           "levels deep: a case is a page of YAML")])
        if sizes[id(node)] > MAX_NODES:
            line = node.start_mark.line + 1
            raise CaseFileError([CaseError(path, line, f"the document expands to more than {MAX_NODES} values "
                                           "(aliases of aliases?): a case is a page of YAML")])


def _children(node: yaml.Node) -> list:
    if isinstance(node, yaml.MappingNode):
        return [n for pair in node.value for n in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


def _collect_lines(path: str, node: yaml.Node, prefix: Path, lines: dict[Path, int]) -> None:
    lines.setdefault(prefix, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        seen: dict = {}
        for key_node, value_node in node.value:
            key = key_node.value
            line = key_node.start_mark.line + 1
            if isinstance(key, str) and key in seen:  # yaml would silently keep the last one
                raise CaseFileError([CaseError(path, line, f"duplicate key '{key}' (first on line {seen[key]})")])
            seen[key] = line
            lines[prefix + (key,)] = line
            _collect_lines(path, value_node, prefix + (key,), lines)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            lines[prefix + (i,)] = item.start_mark.line + 1
            _collect_lines(path, item, prefix + (i,), lines)


def line_of(lines: dict[Path, int], path: Path) -> int | None:
    """The line of ``path`` or of its closest ancestor that has one."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get(())
