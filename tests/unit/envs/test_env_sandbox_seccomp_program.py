"""The bwrap seccomp filter, decoded by an independent classic-BPF interpreter.

The interpreter below knows only the kernel's BPF semantics (linux/filter.h,
Documentation/networking/filter.rst); the syscall numbers and the expected
verdicts are written out by hand from the kernel's syscall tables
(arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h),
not taken from the module under test.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

import pytest

from outrider.envs.sandbox.seccomp import SYSCALLS, seccomp_program

ALLOW = 0x7FFF0000
KILL_PROCESS = 0x80000000
EPERM = 0x00050000 | 1
ENOSYS = 0x00050000 | 38

AUDIT_ARCH_X86_64 = 0xC000003E  # EM_X86_64 = 62 = 0x3e, 64-bit and little-endian bits
AUDIT_ARCH_AARCH64 = 0xC00000B7  # EM_AARCH64 = 183 = 0xb7
AUDIT_ARCH_I386 = 0x40000003  # EM_386 = 3, little-endian, 32-bit

SIGCHLD = 17
CLONE_VM_THREAD = 0x00010000 | 0x00000100 | 0x00000800 | 0x00000200 | 0x00000400  # pthread-like flags
CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000
CLONE_NEWNS = 0x00020000
CLONE_FILES = 0x00000400


def run_bpf(program: bytes, data: bytes) -> int:
    """Execute a classic-BPF program over `data`; its return value."""
    insns = [struct.unpack_from("=HBBI", program, offset) for offset in range(0, len(program), 8)]
    assert len(program) % 8 == 0 and 0 < len(insns) <= 4096
    acc, pc = 0, 0
    while True:
        assert pc < len(insns), "ran off the end of the program"
        code, jt, jf, k = insns[pc]
        pc += 1
        if code == 0x20:  # BPF_LD | BPF_W | BPF_ABS
            assert k % 4 == 0 and k + 4 <= len(data)
            acc = struct.unpack_from("=I", data, k)[0]
        elif code == 0x06:  # BPF_RET | BPF_K
            return k
        elif code in (0x15, 0x35, 0x25, 0x45):  # JEQ, JGE, JGT, JSET with K
            taken = {0x15: acc == k, 0x35: acc >= k, 0x25: acc > k, 0x45: bool(acc & k)}[code]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected BPF instruction {code:#x} at {pc - 1}")


def seccomp_data(nr: int, arch: int, *args: int) -> bytes:
    """struct seccomp_data {int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6];}"""
    padded = (list(args) + [0] * 6)[:6]
    return struct.pack("=iIQ6Q", nr, arch, 0x401000, *padded)


# (name, nr, args, expected verdict); numbers by hand from syscall_64.tbl.
X86_64_CASES = [
    ("read", 0, (), ALLOW),
    ("write", 1, (), ALLOW),
    ("openat", 257, (), ALLOW),
    ("execve", 59, (), ALLOW),
    ("exit_group", 231, (), ALLOW),
    ("fork via clone", 56, (SIGCHLD,), ALLOW),
    ("thread via clone", 56, (CLONE_VM_THREAD,), ALLOW),
    ("clone new user ns", 56, (CLONE_NEWUSER | SIGCHLD,), EPERM),
    ("clone new net ns", 56, (CLONE_NEWNET,), EPERM),
    ("clone3", 435, (), ENOSYS),
    ("unshare files", 272, (CLONE_FILES,), ALLOW),
    ("unshare user ns", 272, (CLONE_NEWUSER,), EPERM),
    ("unshare mount ns", 272, (CLONE_NEWNS,), EPERM),
    # High half of args[0] set, low half harmless: the kernel takes flags as `unsigned long`,
    # but no CLONE_NEW* flag lives there.
    ("unshare files, high bits", 272, (CLONE_FILES | (1 << 40),), ALLOW),
    ("setns", 308, (), EPERM),
    ("ptrace", 101, (), EPERM),
    ("process_vm_readv", 310, (), EPERM),
    ("process_vm_writev", 311, (), EPERM),
    ("mount", 165, (), EPERM),
    ("umount2", 166, (), EPERM),
    ("pivot_root", 155, (), EPERM),
    ("keyctl", 250, (), EPERM),
    ("add_key", 248, (), EPERM),
    ("request_key", 249, (), EPERM),
    ("bpf", 321, (), EPERM),
    ("perf_event_open", 298, (), EPERM),
    ("kexec_load", 246, (), EPERM),
    ("kexec_file_load", 320, (), EPERM),
    ("init_module", 175, (), EPERM),
    ("finit_module", 313, (), EPERM),
    ("delete_module", 176, (), EPERM),
    ("userfaultfd", 323, (), EPERM),
    ("open_by_handle_at", 304, (), EPERM),
    ("name_to_handle_at", 303, (), EPERM),
    ("swapon", 167, (), EPERM),
    ("swapoff", 168, (), EPERM),
    ("reboot", 169, (), EPERM),
    ("acct", 163, (), EPERM),
    ("iopl", 172, (), EPERM),
    ("ioperm", 173, (), EPERM),
    ("quotactl", 179, (), EPERM),
    ("lookup_dcookie", 212, (), EPERM),
    ("clock_settime", 227, (), EPERM),
    ("settimeofday", 164, (), EPERM),
    ("io_uring_setup", 425, (), ENOSYS),
    ("fsopen", 430, (), EPERM),
    # x32 ABI: bit 30 set; `read` there would otherwise be number 0x40000000.
    ("x32 read", 0x40000000, (), EPERM),
    ("x32 ptrace", 0x40000000 | 101, (), EPERM),
    ("getpid", 39, (), ALLOW),
    ("nanosleep", 35, (), ALLOW),
]

# asm-generic numbers (arm64 has no iopl/ioperm, fork or open).
AARCH64_CASES = [
    ("read", 63, (), ALLOW),
    ("write", 64, (), ALLOW),
    ("openat", 56, (), ALLOW),
    ("execve", 221, (), ALLOW),
    ("exit_group", 94, (), ALLOW),
    # 101 is ptrace on x86_64 but nanosleep here: the tables must not be mixed up.
    ("nanosleep", 101, (), ALLOW),
    ("fork via clone", 220, (SIGCHLD,), ALLOW),
    ("clone new user ns", 220, (CLONE_NEWUSER | SIGCHLD,), EPERM),
    ("clone3", 435, (), ENOSYS),
    ("unshare files", 97, (CLONE_FILES,), ALLOW),
    ("unshare user ns", 97, (CLONE_NEWUSER,), EPERM),
    ("setns", 268, (), EPERM),
    ("ptrace", 117, (), EPERM),
    ("process_vm_readv", 270, (), EPERM),
    ("mount", 40, (), EPERM),
    ("umount2", 39, (), EPERM),
    ("pivot_root", 41, (), EPERM),
    ("keyctl", 219, (), EPERM),
    ("add_key", 217, (), EPERM),
    ("bpf", 280, (), EPERM),
    ("perf_event_open", 241, (), EPERM),
    ("kexec_load", 104, (), EPERM),
    ("finit_module", 273, (), EPERM),
    ("userfaultfd", 282, (), EPERM),
    ("open_by_handle_at", 265, (), EPERM),
    ("swapon", 224, (), EPERM),
    ("reboot", 142, (), EPERM),
    ("clock_settime", 112, (), EPERM),
    ("settimeofday", 170, (), EPERM),
    ("lookup_dcookie", 18, (), EPERM),
    # 0x40000000 is no x32 marker on arm64: an unknown number, left to the kernel (ENOSYS there).
    ("bit 30 number", 0x40000000, (), ALLOW),
]


@pytest.mark.parametrize(("name", "nr", "args", "expected"), X86_64_CASES, ids=[case[0] for case in X86_64_CASES])
def test_x86_64_filter_verdicts(name, nr, args, expected):
    program = seccomp_program("x86_64")
    assert run_bpf(program, seccomp_data(nr, AUDIT_ARCH_X86_64, *args)) == expected


@pytest.mark.parametrize(("name", "nr", "args", "expected"), AARCH64_CASES, ids=[case[0] for case in AARCH64_CASES])
def test_aarch64_filter_verdicts(name, nr, args, expected):
    program = seccomp_program("aarch64")
    assert run_bpf(program, seccomp_data(nr, AUDIT_ARCH_AARCH64, *args)) == expected


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
@pytest.mark.parametrize("foreign", [AUDIT_ARCH_I386, 0x40000028, AUDIT_ARCH_X86_64, AUDIT_ARCH_AARCH64])
def test_a_foreign_architecture_is_killed(arch, foreign):
    """i386 (int 0x80) and arm32 compat calls have other numbers: such a process is killed, even for `read`."""
    own = {"x86_64": AUDIT_ARCH_X86_64, "aarch64": AUDIT_ARCH_AARCH64}[arch]
    verdict = run_bpf(seccomp_program(arch), seccomp_data(0, foreign))
    assert verdict == (ALLOW if foreign == own else KILL_PROCESS)


def test_unknown_architecture_is_refused_by_name():
    with pytest.raises(ValueError, match="riscv64.*x86_64, aarch64"):
        seccomp_program("riscv64")


HEADERS = {
    "x86_64": (Path("/usr/include/x86_64-linux-gnu/asm/unistd_64.h"), r"#define __NR_(\w+)\s+(\d+)"),
    "aarch64": (Path("/usr/include/asm-generic/unistd.h"), r"#define __NR(?:3264)?_(\w+)\s+(\d+)"),
}


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_syscall_tables_match_the_system_headers(arch):
    """A second, independent source for every number the filter uses: the kernel's uapi headers."""
    header, pattern = HEADERS[arch]
    if not header.exists():
        pytest.skip(f"{header} not installed (Debian: linux-libc-dev)")
    numbers = {name: int(nr) for name, nr in re.findall(pattern, header.read_text())}
    assert {name: numbers.get(name) for name in SYSCALLS[arch]} == SYSCALLS[arch]
