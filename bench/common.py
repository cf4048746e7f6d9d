"""Shared bits of the benchmark scripts: machine description and results/perf.md sections."""

from __future__ import annotations

import os
import platform
import re
import subprocess


def machine() -> str:
    cpu = ""
    try:
        with open("/proc/cpuinfo") as fh:
            cpu = next((line.split(":", 1)[1].strip() for line in fh if line.startswith("model name")), "")
    except OSError:
        pass
    mem = ""
    try:
        with open("/proc/meminfo") as fh:
            kb = int(next(line for line in fh if line.startswith("MemTotal")).split()[1])
            mem = f", {kb / 2**20:.0f} GiB"
    except (OSError, StopIteration):
        pass
    from importlib.metadata import version

    versions = []
    for dist in ("tensorflow-cpu", "tensorflow", "keras"):
        try:
            versions.append(f"{dist} {version(dist)}")
        except Exception:
            continue
    return (f"{os.cpu_count()} cores ({cpu or platform.machine()}){mem}; Python {platform.python_version()}; "
            + ", ".join(versions) + f"; commit {_git()}")


def _git() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                              check=True).stdout.strip()
    except Exception:
        return "unknown"


def write_section(path: str, name: str, body: str) -> None:
    """Replace (or append) the section ``name`` of the Markdown file ``path``."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    text = open(path).read() if os.path.exists(path) else "# Performance\n\nWritten by the scripts in bench/.\n"
    block = f"{start}\n{body.strip()}\n{end}"
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w") as fh:
        fh.write(text)
