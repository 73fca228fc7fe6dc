"""The seccomp filter of bwrap runs: a classic-BPF program that bwrap installs
(`--seccomp FD`) in the sandboxed program just before it execs it.

bwrap sets up the namespaces, mounts and its PID-namespace init *before* it
applies the filter, so blocking `mount`, `unshare`... here costs bwrap
nothing; only the program (and everything it starts: filters are inherited
across fork and exec and cannot be removed) is filtered. bwrap's init itself is
not filtered, which is why `ptrace` must be: the program could otherwise attach
to its init and hold the whole run until the wall-time limit.

What is refused, and why (ERRNO(EPERM) unless said otherwise):

* debugging other processes: `ptrace`, `process_vm_readv`, `process_vm_writev`;
* mounts and namespaces (bwrap set up the only view the program gets):
  `mount`, `umount2`, `pivot_root`, the new mount API (`open_tree`,
  `move_mount`, `fsopen`, `fsconfig`, `fsmount`, `fspick`, `mount_setattr`),
  `setns`, and `unshare`/`clone` when their flags ask for a new namespace
  (`flags & NAMESPACE_FLAGS`; plain fork and threads pass). `clone3` passes its
  flags in memory that BPF cannot read, so it answers ENOSYS: glibc then falls
  back to `clone`, which is checked;
* the kernel's keyring (`keyctl`, `add_key`, `request_key`), `bpf`,
  `perf_event_open`, `userfaultfd` (a usual tool of kernel exploits: it stalls
  the kernel at a chosen page fault), `io_uring_*` (its operations bypass
  seccomp; ENOSYS so that libuv and others fall back to threads);
* file handles that escape mount namespaces: `open_by_handle_at`,
  `name_to_handle_at`; `lookup_dcookie`;
* host administration: kernel modules (`init_module`, `finit_module`,
  `delete_module`), `kexec_load`, `kexec_file_load`, `reboot`, `swapon`,
  `swapoff`, `acct`, `quotactl`, `iopl`/`ioperm` (x86 port I/O), the clock
  (`clock_settime`, `settimeofday`).

Most of these already fail without the filter (the program has no
capabilities in the host's namespaces); the filter removes the kernel code
behind them from what the program can reach at all.

The program (`seccomp_program()`), with `A` the BPF accumulator and
`seccomp_data = {int nr; u32 arch; u64 ip; u64 args[6]}`:

    A = arch;  if A != native arch: KILL_PROCESS      (i386/arm32 compat calls
                                                        have other numbers)
    A = nr;    x86_64 only: if A >= 0x40000000: EPERM (the x32 ABI)
    for each blocked nr:              if A == nr: EPERM
    for clone3, io_uring_*:           if A == nr: ENOSYS
    for unshare, clone:               if A == nr: goto check_flags
    ALLOW
    check_flags: A = low 32 bits of args[0]; if A & NAMESPACE_FLAGS: EPERM; ALLOW
    (then the shared return instructions: EPERM, ENOSYS)

Syscall numbers: arch/x86/entry/syscalls/syscall_64.tbl and
include/uapi/asm-generic/unistd.h (aarch64) of the kernel sources.
"""

from __future__ import annotations

import errno
import platform
import struct

# <linux/bpf_common.h>
BPF_LD, BPF_JMP, BPF_RET = 0x00, 0x05, 0x06
BPF_W, BPF_ABS, BPF_K = 0x00, 0x20, 0x00
BPF_JEQ, BPF_JGE, BPF_JSET = 0x10, 0x30, 0x40

# <linux/seccomp.h>
SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000

# <linux/audit.h>: EM_X86_64 (62) and EM_AARCH64 (183), | __AUDIT_ARCH_64BIT | __AUDIT_ARCH_LE.
AUDIT_ARCH_X86_64 = 0xC000003E
AUDIT_ARCH_AARCH64 = 0xC00000B7
X32_SYSCALL_BIT = 0x40000000

# Offsets into struct seccomp_data; args[0]'s low half comes first (little endian).
_OFFSET_NR, _OFFSET_ARCH, _OFFSET_ARG0_LOW = 0, 4, 16

# CLONE_NEWTIME | CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC
# | CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET  (<linux/sched.h>)
NAMESPACE_FLAGS = 0x80 | 0x20000 | 0x02000000 | 0x04000000 | 0x08000000 | 0x10000000 | 0x20000000 | 0x40000000

DENIED = (
    "ptrace", "process_vm_readv", "process_vm_writev",
    "mount", "umount2", "pivot_root", "open_tree", "move_mount", "fsopen", "fsconfig", "fsmount", "fspick",
    "mount_setattr", "setns",
    "keyctl", "add_key", "request_key", "bpf", "perf_event_open", "userfaultfd",
    "open_by_handle_at", "name_to_handle_at", "lookup_dcookie",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load", "reboot",
    "swapon", "swapoff", "acct", "quotactl", "iopl", "ioperm", "clock_settime", "settimeofday",
)
"""Refused with EPERM (names that an architecture lacks are skipped there)."""
NOT_IMPLEMENTED = ("clone3", "io_uring_setup", "io_uring_enter", "io_uring_register")
"""Answered ENOSYS, so that callers take their fallback."""
NAMESPACE_CHECKED = ("unshare", "clone")
"""Refused with EPERM when their first argument has a NAMESPACE_FLAGS bit."""

SYSCALLS: dict[str, dict[str, int]] = {
    "x86_64": {
        "clone": 56, "ptrace": 101, "pivot_root": 155, "acct": 163, "settimeofday": 164, "mount": 165,
        "umount2": 166, "swapon": 167, "swapoff": 168, "reboot": 169, "iopl": 172, "ioperm": 173,
        "init_module": 175, "delete_module": 176, "quotactl": 179, "lookup_dcookie": 212,
        "clock_settime": 227, "kexec_load": 246, "add_key": 248, "request_key": 249, "keyctl": 250,
        "unshare": 272, "perf_event_open": 298, "name_to_handle_at": 303, "open_by_handle_at": 304,
        "setns": 308, "process_vm_readv": 310, "process_vm_writev": 311, "finit_module": 313,
        "kexec_file_load": 320, "bpf": 321, "userfaultfd": 323, "io_uring_setup": 425,
        "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428, "move_mount": 429,
        "fsopen": 430, "fsconfig": 431, "fsmount": 432, "fspick": 433, "clone3": 435, "mount_setattr": 442,
    },
    # asm-generic numbering; no iopl/ioperm on arm64.
    "aarch64": {
        "lookup_dcookie": 18, "umount2": 39, "mount": 40, "pivot_root": 41, "quotactl": 60, "acct": 89,
        "unshare": 97, "kexec_load": 104, "init_module": 105, "delete_module": 106, "clock_settime": 112,
        "ptrace": 117, "reboot": 142, "settimeofday": 170, "add_key": 217, "request_key": 218,
        "keyctl": 219, "clone": 220, "swapon": 224, "swapoff": 225, "perf_event_open": 241,
        "name_to_handle_at": 264, "open_by_handle_at": 265, "setns": 268, "process_vm_readv": 270,
        "process_vm_writev": 271, "finit_module": 273, "bpf": 280, "userfaultfd": 282,
        "kexec_file_load": 294, "io_uring_setup": 425, "io_uring_enter": 426, "io_uring_register": 427,
        "open_tree": 428, "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
        "fspick": 433, "clone3": 435, "mount_setattr": 442,
    },
}
AUDIT_ARCH = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}


def native_arch() -> str | None:
    """This host's architecture as a key of SYSCALLS, or None when the filter has no table for it."""
    machine = platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    return machine if machine in SYSCALLS else None


def _stmt(code: int, k: int) -> tuple[int, int, int, int]:
    return (code, 0, 0, k)


def seccomp_program(arch: str) -> bytes:
    """The filter for `arch` ("x86_64" or "aarch64") as bwrap reads it: struct sock_filter
    {u16 code; u8 jt; u8 jf; u32 k} entries, native byte order."""
    if arch not in SYSCALLS:
        raise ValueError(f"no seccomp syscall table for architecture {arch!r}; known: {', '.join(SYSCALLS)}")
    table = SYSCALLS[arch]
    deny = [table[name] for name in DENIED if name in table]
    enosys = [table[name] for name in NOT_IMPLEMENTED if name in table]
    checked = [table[name] for name in NAMESPACE_CHECKED]

    # A jump's jt is either an offset (int) or the name of its target ("deny", ...).
    code: list[tuple[int, int | str, int, int]] = [
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, _OFFSET_ARCH),
        (BPF_JMP | BPF_JEQ | BPF_K, 1, 0, AUDIT_ARCH[arch]),
        _stmt(BPF_RET | BPF_K, SECCOMP_RET_KILL_PROCESS),
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, _OFFSET_NR),
    ]
    if arch == "x86_64":
        code.append((BPF_JMP | BPF_JGE | BPF_K, "deny", 0, X32_SYSCALL_BIT))
    code += [(BPF_JMP | BPF_JEQ | BPF_K, "deny", 0, nr) for nr in deny]
    code += [(BPF_JMP | BPF_JEQ | BPF_K, "enosys", 0, nr) for nr in enosys]
    code += [(BPF_JMP | BPF_JEQ | BPF_K, "check_flags", 0, nr) for nr in checked]
    code.append(_stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW))
    # Targets after every jump to them: classic BPF jumps only forward.
    labels = {"check_flags": len(code)}
    code += [
        (BPF_LD | BPF_W | BPF_ABS, 0, 0, _OFFSET_ARG0_LOW),
        (BPF_JMP | BPF_JSET | BPF_K, "deny", 0, NAMESPACE_FLAGS),
        _stmt(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    ]
    labels["deny"] = len(code)
    code.append(_stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | errno.EPERM))
    labels["enosys"] = len(code)
    code.append(_stmt(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | errno.ENOSYS))
    out = bytearray()
    for index, (op, jt, jf, k) in enumerate(code):
        # A jump offset counts from the next instruction: target = index + 1 + jt.
        if isinstance(jt, str):
            jt = labels[jt] - (index + 1)
        if not 0 <= jt <= 255:
            raise RuntimeError(f"seccomp jump at {index} out of range: {jt}")
        out += struct.pack("=HBBI", op, jt, jf, k)
    return bytes(out)
