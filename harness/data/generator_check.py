"""Check a ``file.py`` data generator without running it: it parses, defines the function, takes the arguments.

``validate`` and every loading command read the file with ``ast`` only; the
shapes of what it returns are known only when a training worker runs it.
"""

from __future__ import annotations

import ast


def generator_problems(path: str, function: str, args: dict) -> list[tuple[int | None, str, bool]]:
    """``(line, message, in_the_py_file)`` for each problem: syntax errors point into the file itself."""
    try:
        with open(path, encoding="utf-8") as fh:
            tree = ast.parse(fh.read(), filename=path)
    except SyntaxError as exc:
        return [(exc.lineno, f"syntax error: {exc.msg}", True)]
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        return [(None, f"cannot read {path}: {exc}", False)]
    defs = [n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.name == function]
    if not defs:
        names = sorted(n.name for n in tree.body if isinstance(n, ast.FunctionDef))
        return [(None, f"the data file defines no top-level function '{function}' "
                       f"(it defines: {', '.join(names) or 'none'})", False)]
    why = _signature_problem(defs[-1].args, args or {})
    return [(None, f"{function}(rng, ...) {why}", False)] if why else []


def _signature_problem(spec: ast.arguments, args: dict) -> str | None:
    """Why ``function(rng, **args)`` would not bind, or None."""
    positional = spec.posonlyargs + spec.args
    if not positional and not spec.vararg:
        return "takes no positional argument for the seeded rng"
    named = positional[1:] + spec.kwonlyargs
    names = {a.arg for a in named}
    unknown = sorted(k for k in args if k not in names)
    if unknown and spec.kwarg is None:
        takes = ", ".join(sorted(names)) or "none"
        return f"takes no argument {', '.join(repr(k) for k in unknown)} (it takes: {takes})"
    posonly = {a.arg for a in spec.posonlyargs[1:]}
    if posonly & set(args):
        return f"takes {', '.join(sorted(posonly & set(args)))} positionally only"
    n_defaults = len(spec.defaults)
    required = [a.arg for a in positional[1:len(positional) - n_defaults]]
    required += [a.arg for a, d in zip(spec.kwonlyargs, spec.kw_defaults) if d is None]
    missing = [r for r in required if r not in args]
    return f"needs argument(s) {', '.join(missing)} in the case's args" if missing else None
