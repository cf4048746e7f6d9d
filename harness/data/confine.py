"""Confinement of a case's data generator, from inside the process that runs it (Linux).

Three kernel features, each used when the kernel offers it and reported when not:

- a PID namespace: the generator's process is its namespace's init, so every
  process it forks or spawns (daemons that ``setsid`` included) is killed by the
  kernel the moment it ends; a network namespace with it (no interface but a
  downed loopback). Unprivileged users get both inside a user namespace.
- Landlock (kernel 5.13+): no file may be created, written, truncated, renamed
  or removed outside a private scratch folder (so the cache and results cannot
  be edited); no TCP bind or connect (ABI 4+); no signal to a process outside
  the sandbox and no abstract unix socket (ABI 6+), so it cannot kill its parent.
  Reading is not restricted: a generator can read what the user can read.
- no core dumps, and the process dies with its parent (``PR_SET_PDEATHSIG``).

Numbers are the kernel's (``include/uapi/linux/landlock.h``, ``sched.h``, ``prctl.h``).
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import struct
import sys

CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWPID, CLONE_NEWNET = 0x00020000, 0x10000000, 0x20000000, 0x40000000
PR_SET_PDEATHSIG, PR_SET_NO_NEW_PRIVS = 1, 38
SYS_LANDLOCK = {"x86_64": (444, 445, 446), "aarch64": (444, 445, 446)}  # create_ruleset, add_rule, restrict_self

# Landlock file-system rights that change the file system (reading and executing stay allowed).
FS_WRITE = {1: 0b1_1111_1111_0010, 2: 1 << 13, 3: 1 << 14}  # WRITE_FILE, REMOVE_*, MAKE_*; REFER (v2); TRUNCATE (v3)
FILE_ONLY = 0b10 | (1 << 14)  # rights a rule on a single file (/dev/null) may grant: WRITE_FILE, TRUNCATE
NET_TCP = 0b11  # BIND_TCP | CONNECT_TCP (v4)
SCOPE_ALL = 0b11  # ABSTRACT_UNIX_SOCKET | SIGNAL (v6)


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def die_with_parent(parent: int | None = None) -> None:
    """SIGKILL this process when its parent ends (and now, if ``parent`` is given and already gone)."""
    if sys.platform.startswith("linux"):
        _libc().prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def new_namespaces() -> str | None:
    """Enter fresh PID and network namespaces for this process's children; None, or why not."""
    if not sys.platform.startswith("linux"):
        return f"no namespaces on {sys.platform}"
    flags = CLONE_NEWPID | CLONE_NEWNET
    libc = _libc()
    if os.geteuid() != 0 and libc.unshare(CLONE_NEWUSER | flags) == 0:
        return None
    if libc.unshare(flags) == 0:
        return None
    return f"unshare refused ({os.strerror(ctypes.get_errno())})"


def no_core_dumps() -> None:
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def landlock(scratch: str) -> str | None:
    """Forbid writing anywhere but ``scratch`` (and /dev/null), TCP and outside signals; None, or why not."""
    calls = SYS_LANDLOCK.get(os.uname().machine)
    if not sys.platform.startswith("linux") or not calls:
        return f"no Landlock on {sys.platform}/{os.uname().machine}"
    libc, (create, add_rule, restrict) = _libc(), calls
    libc.syscall.restype = ctypes.c_long
    abi = libc.syscall(create, None, ctypes.c_size_t(0), ctypes.c_uint32(1))  # LANDLOCK_CREATE_RULESET_VERSION
    if abi < 1:
        return f"Landlock unavailable ({os.strerror(ctypes.get_errno())})"
    fs = sum(bits for version, bits in FS_WRITE.items() if abi >= version)
    attr = struct.pack("QQQ", fs, NET_TCP if abi >= 4 else 0, SCOPE_ALL if abi >= 6 else 0)
    size = 24 if abi >= 6 else 16 if abi >= 4 else 8
    buf = ctypes.create_string_buffer(attr[:size])
    ruleset = libc.syscall(create, buf, ctypes.c_size_t(size), ctypes.c_uint32(0))
    if ruleset < 0:
        return f"Landlock ruleset refused ({os.strerror(ctypes.get_errno())})"
    try:
        for path, rights in ((scratch, fs), (os.devnull, fs & FILE_ONLY)):
            fd = os.open(path, os.O_PATH | getattr(os, "O_CLOEXEC", 0))
            try:
                rule = ctypes.create_string_buffer(struct.pack("=Qi", rights, fd))
                if libc.syscall(add_rule, ctypes.c_int(ruleset), ctypes.c_int(1), rule, ctypes.c_uint32(0)) != 0:
                    return f"Landlock rule refused for {path} ({os.strerror(ctypes.get_errno())})"
            finally:
                os.close(fd)
        libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0)
        if libc.syscall(restrict, ctypes.c_int(ruleset), ctypes.c_uint32(0)) != 0:
            return f"Landlock restriction refused ({os.strerror(ctypes.get_errno())})"
    finally:
        os.close(ruleset)
    return None
