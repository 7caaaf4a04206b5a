"""Users and capabilities inside a sandbox container.

The container starts as root with three capabilities and nothing else (``--cap-drop ALL
--cap-add SETUID,SETGID,KILL``, ``no-new-privileges``). The runner (PID 1), before it reads
anything but its own modules, becomes `TRUSTED` and keeps those three capabilities, which the
zygote and every harness inherit; the program's process becomes `PROGRAM` and drops every
capability before the program's first line runs. So the program shares no uid with a trusted
process, and ``kill``, ``prlimit``, ``setpriority``, ``sched_setaffinity`` and ``ioprio_set``
on them are refused (they need a uid match or a capability the program does not hold).

* ``SETUID``/``SETGID``: for a harness to switch its fork to `PROGRAM`, and for the runner's
  cleaner (a fork that becomes `PROGRAM` to empty ``/tmp`` of the program's files).
* ``KILL``: to kill the program's processes (another uid) on timeouts and after every job.
"""

from __future__ import annotations

import ctypes
import os

TRUSTED = 10001   # runner, zygote, harness
PROGRAM = 10002   # the program's processes (and the cleaner)
CAP_KILL, CAP_SETGID, CAP_SETUID = 5, 6, 7
HELD = (1 << CAP_KILL) | (1 << CAP_SETGID) | (1 << CAP_SETUID)
_VERSION_3 = 0x20080522
PR_SET_KEEPCAPS, PR_SET_NO_NEW_PRIVS = 8, 38


class _Header(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _Data(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _libc():
    return ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, value: int) -> None:
    if _libc().prctl(option, value, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), f"prctl({option}) failed")


def capabilities() -> tuple[int, int, int]:
    """This process's (effective, permitted, inheritable) capability sets."""
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    if _libc().capget(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capget failed")
    return tuple(data[0].__getattribute__(f) | (data[1].__getattribute__(f) << 32)
                 for f in ("effective", "permitted", "inheritable"))


def _capset(effective: int, permitted: int) -> None:
    header, data = _Header(_VERSION_3, 0), (_Data * 2)()
    data[0].effective, data[0].permitted = effective & 0xFFFFFFFF, permitted & 0xFFFFFFFF
    data[1].effective, data[1].permitted = effective >> 32, permitted >> 32
    if _libc().capset(ctypes.byref(header), data) != 0:
        raise OSError(ctypes.get_errno(), "capset failed")


def _switch(uid: int) -> None:
    os.setgroups([])
    os.setresgid(uid, uid, uid)
    os.setresuid(uid, uid, uid)


def become_trusted() -> None:
    """The runner's first step: from root to `TRUSTED`, holding only `HELD`."""
    if os.getuid() != 0:
        raise OSError("the runner must start as root (with only SETUID, SETGID and KILL) to give the "
                      "program a uid of its own")
    _prctl(PR_SET_KEEPCAPS, 1)
    _switch(TRUSTED)
    _prctl(PR_SET_KEEPCAPS, 0)
    _capset(HELD, HELD)
    if os.getresuid() != (TRUSTED,) * 3 or capabilities()[:2] != (HELD, HELD):
        raise OSError("could not switch to the trusted user")


def become_program() -> None:
    """In a fork that is about to run the program (or empty its files): `PROGRAM`, no capability,
    no new privileges. Raises rather than run the program with anything left."""
    _switch(PROGRAM)
    _capset(0, 0)
    _prctl(PR_SET_NO_NEW_PRIVS, 1)
    if (os.getresuid() != (PROGRAM,) * 3 or os.getresgid() != (PROGRAM,) * 3 or os.getgroups()
            or capabilities() != (0, 0, 0)):
        raise OSError("could not drop to the program's user")
