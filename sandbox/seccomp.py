"""The seccomp profile of sandbox containers (``--security-opt seccomp=<profile>``).

It replaces Docker's default profile, so it denies what that profile denies to a process
without capabilities, and more: everything a program, g++ and Python do not need and that
opens kernel code to a program (docs/sandbox.md, *Every container setting*):

* ``io_uring_setup``/``io_uring_enter``/``io_uring_register``: a large kernel interface with a
  history of privilege escalations, and I/O that bypasses the other syscall rules;
* ``socket(AF_VSOCK)``: a channel to the hypervisor or other VMs that ``--network none`` does
  not cover; ``socket(AF_NETLINK)``: kernel configuration and event interfaces;
* new namespaces (``unshare``, ``setns``, ``clone``/``clone3`` with namespace flags): a user
  namespace would give the program every capability inside it;
* keyrings, BPF, perf events, ``userfaultfd``, kernel modules, mounts, clocks, reboot, swap,
  ``ptrace``-like access to other processes' memory, and ``personality`` changes.

Denied calls fail with an error number (``EPERM``, or ``EAFNOSUPPORT`` for socket families,
``ENOSYS`` for ``clone3`` so that the C library falls back to ``clone``), never by killing the
process, so a denied call is an ordinary error the program sees.
"""

from __future__ import annotations

import errno
import json

AF_NETLINK, AF_VSOCK = 16, 40
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000, 0x80)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET, NEWTIME."""

DENIED = (
    "io_uring_setup", "io_uring_enter", "io_uring_register", "socketcall",
    "unshare", "setns",
    "add_key", "request_key", "keyctl",
    "bpf", "perf_event_open", "userfaultfd", "fanotify_init",
    "init_module", "finit_module", "delete_module", "create_module", "kexec_load", "kexec_file_load",
    "mount", "umount2", "pivot_root", "fsopen", "fsmount", "fsconfig", "fspick", "open_tree", "move_mount",
    "mount_setattr", "chroot", "quotactl", "swapon", "swapoff", "reboot", "acct",
    "settimeofday", "clock_settime", "clock_adjtime", "adjtimex", "stime",
    "sethostname", "setdomainname", "iopl", "ioperm", "syslog", "vhangup", "lookup_dcookie", "nfsservctl",
    "process_vm_readv", "process_vm_writev", "kcmp", "ptrace", "open_by_handle_at", "name_to_handle_at",
    "uselib", "ustat", "sysfs", "_sysctl", "vm86", "vm86old", "get_kernel_syms", "query_module",
    "move_pages", "mbind", "set_mempolicy", "migrate_pages",
)


def profile() -> dict:
    """The profile as Docker reads it (``docker run --security-opt seccomp=FILE`` with this as FILE)."""
    eperm = errno.EPERM
    rules = [
        {"names": list(DENIED), "action": "SCMP_ACT_ERRNO", "errnoRet": eperm},
        {"names": ["clone3"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.ENOSYS},
        {"names": ["personality"], "action": "SCMP_ACT_ERRNO", "errnoRet": eperm,
         "args": [{"index": 0, "value": 0, "valueTwo": 0, "op": "SCMP_CMP_NE"},
                  {"index": 0, "value": 8, "valueTwo": 0, "op": "SCMP_CMP_NE"},          # PER_LINUX32
                  {"index": 0, "value": 0x20000, "valueTwo": 0, "op": "SCMP_CMP_NE"},    # UNAME26
                  {"index": 0, "value": 0xFFFFFFFF, "valueTwo": 0, "op": "SCMP_CMP_NE"}]},  # query
    ]
    for flag in NAMESPACE_FLAGS:  # denied when (flags & flag) == flag
        rules.append({"names": ["clone"], "action": "SCMP_ACT_ERRNO", "errnoRet": eperm,
                      "args": [{"index": 0, "value": flag, "valueTwo": flag, "op": "SCMP_CMP_MASKED_EQ"}]})
    for family in (AF_NETLINK, AF_VSOCK):
        rules.append({"names": ["socket"], "action": "SCMP_ACT_ERRNO", "errnoRet": errno.EAFNOSUPPORT,
                      "args": [{"index": 0, "value": family, "valueTwo": 0, "op": "SCMP_CMP_EQ"}]})
    return {
        "defaultAction": "SCMP_ACT_ALLOW",
        "archMap": [
            {"architecture": "SCMP_ARCH_X86_64", "subArchitectures": ["SCMP_ARCH_X86", "SCMP_ARCH_X32"]},
            {"architecture": "SCMP_ARCH_AARCH64", "subArchitectures": ["SCMP_ARCH_ARM"]},
        ],
        "syscalls": rules,
    }


def security_opt() -> str:
    """``seccomp=<the profile as JSON>``, the form the Docker API takes (the CLI reads a file into it)."""
    return "seccomp=" + json.dumps(profile(), separators=(",", ":"))
