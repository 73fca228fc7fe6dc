"""bwrap hardening against the real sandbox: the seccomp filter and per-run cgroups.

Every case runs a program in real bwrap runs (no mocks). Cgroup cases run once per
cgroup version and skip, naming why, where this machine cannot delegate that version;
the rlimit case runs with cgroups turned off to pin down what the fallback does.
"""

from __future__ import annotations

import errno
import time
from dataclasses import replace

import pytest

from outrider.envs.sandbox import LimitHit, Limits, SandboxUnavailable, make_sandbox
from outrider.envs.sandbox.bwrap import BwrapSandbox
from testkit.containment import TEST_LIMITS, assert_nothing_left, leftover_run_cgroups, run_json

pytestmark = pytest.mark.sandbox
MIB = 1024 * 1024


def bwrap(options, **changes) -> BwrapSandbox:
    options = replace(options, **changes)
    reason = BwrapSandbox.unavailable_reason(options)
    if reason is not None:
        pytest.skip(f"bwrap with {changes or 'defaults'} unavailable here: {reason}")
    return BwrapSandbox(options)


@pytest.fixture(params=["v2", "v1"])
def cgroup_box(request, sandbox_options):
    box = bwrap(sandbox_options, cgroups=request.param)
    assert box.cgroups is not None and box.cgroups.version == int(request.param[1])
    yield box
    box.close()


# syscall(2) through ctypes, x86_64 and aarch64 numbers by hand (syscall_64.tbl, asm-generic).
SYSCALL_PROBE = r"""
import ctypes, json, os, platform
NR = {
    "x86_64": {"ptrace": 101, "mount": 165, "keyctl": 250, "bpf": 321, "perf_event_open": 298, "unshare": 272},
    "aarch64": {"ptrace": 117, "mount": 40, "keyctl": 219, "bpf": 280, "perf_event_open": 241, "unshare": 97},
}[platform.machine()]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long

def call(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(ctypes.c_long(NR[name]), *[ctypes.c_long(a) for a in args])
    return 0 if result >= 0 else ctypes.get_errno()

PTRACE_TRACEME, PTRACE_ATTACH, CLONE_NEWUSER = 0, 16, 0x10000000
out = {
    "mount": call("mount", 0, 0, 0, 0, 0),
    "keyctl": call("keyctl", 0, 0, 0, 0, 0),
    "bpf": call("bpf", 0, 0, 0),
    "perf_event_open": call("perf_event_open", 0, 0, -1, -1, 0),
    "unshare_user": call("unshare", CLONE_NEWUSER),
}
if os.environ.get("PROBE_PTRACE") != "0":
    # Attaching to bwrap's (unfiltered) namespace init would stop it and hold the run.
    out["ptrace_attach_init"] = call("ptrace", PTRACE_ATTACH, 1, 0, 0)
    out["ptrace_traceme"] = call("ptrace", PTRACE_TRACEME, 0, 0, 0)
print(json.dumps(out))
"""


def test_seccomp_refuses_kernel_attack_surface_with_eperm(sandbox_options):
    box = bwrap(sandbox_options, seccomp=True)
    started = time.perf_counter()
    result, seen = run_json(box, SYSCALL_PROBE)
    assert result.ok, result.stderr
    assert seen == {name: errno.EPERM for name in (
        "mount", "keyctl", "bpf", "perf_event_open", "unshare_user", "ptrace_attach_init", "ptrace_traceme")}
    assert time.perf_counter() - started < TEST_LIMITS.wall_time_s
    assert_nothing_left(box)


def test_without_the_filter_the_same_calls_reach_the_kernel(sandbox_options):
    """The EPERMs above are the filter's: unfiltered, these arguments fail otherwise
    (EFAULT for the NULL mount, EINVAL for keyctl/bpf, ENOSPC from --disable-userns)."""
    box = bwrap(sandbox_options, seccomp=False)
    program = "import os\nos.environ['PROBE_PTRACE'] = '0'\n" + SYSCALL_PROBE
    result, seen = run_json(box, program)
    assert result.ok, result.stderr
    assert set(seen) == {"mount", "keyctl", "bpf", "perf_event_open", "unshare_user"}
    assert all(code not in (0, errno.EPERM) for code in seen.values()), seen


def test_ordinary_work_still_works_under_the_filter(sandbox_options):
    box = bwrap(sandbox_options, seccomp=True)
    code = r"""
import concurrent.futures, json, multiprocessing, os, subprocess, sys

def main():
    with open("/work/out.txt", "w") as f:
        f.write("x" * 1000)
    with open("/tmp/t.txt", "w") as f:
        f.write("y")
    sizes = [os.path.getsize("/work/out.txt"), os.path.getsize("/tmp/t.txt")]
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        squares = sorted(pool.map(lambda n: n * n, range(8)))
    pid = os.fork()
    if pid == 0:
        os._exit(7)
    forked = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
    child = subprocess.run([sys.executable, "-c", "print(6 * 7)"], capture_output=True, text=True)
    with multiprocessing.get_context("spawn").Pool(2) as pool:
        pooled = pool.map(abs, [-1, -2, -3])
    print(json.dumps({"sizes": sizes, "squares": squares, "forked": forked,
                      "subprocess": child.stdout.strip(), "pool": pooled}))

if __name__ == "__main__":  # spawned pool workers import this file again
    main()
"""
    result, seen = run_json(box, code, limits=replace(TEST_LIMITS, wall_time_s=20, cpu_time_s=10))
    assert result.ok, result.stderr
    assert seen == {"sizes": [1000, 1], "squares": [0, 1, 4, 9, 16, 25, 36, 49], "forked": 7,
                    "subprocess": "42", "pool": [1, 2, 3]}


# Four children touch 300 MiB each and hold it for 2 s; the parent reports how many failed.
FOUR_TIMES_300_MIB = r"""
import json, os, time
children = []
for _ in range(4):
    pid = os.fork()
    if pid == 0:
        block = bytearray(300 * 1024 * 1024)
        for offset in range(0, len(block), 4096):
            block[offset] = 1
        time.sleep(2)
        os._exit(0)
    children.append(pid)
failed = sum(os.waitpid(pid, 0)[1] != 0 for pid in children)
print(json.dumps({"failed": failed}))
"""
AGGREGATE_LIMITS = Limits(wall_time_s=30, cpu_time_s=20, memory_bytes=512 * MIB, max_processes=16)


def test_cgroup_memory_limit_counts_the_whole_run(cgroup_box):
    """4 × 300 MiB = 1200 MiB > 512 MiB for the run, though each process stays under 512 MiB
    of address space: the cgroup stops the run, reported as MEMORY, well before wall time."""
    result = cgroup_box.run(FOUR_TIMES_300_MIB, AGGREGATE_LIMITS)
    assert result.limit_hit is LimitHit.MEMORY, result
    assert not result.ok
    assert result.duration_s < AGGREGATE_LIMITS.wall_time_s / 2
    assert_nothing_left(cgroup_box)


def test_cgroup_memory_limit_leaves_a_run_below_it_alone(cgroup_box):
    """Control: 4 × 100 MiB = 400 MiB fits under the run's 512 MiB."""
    program = FOUR_TIMES_300_MIB.replace("300 * 1024 * 1024", "100 * 1024 * 1024")
    result, seen = run_json(cgroup_box, program, limits=AGGREGATE_LIMITS)
    assert result.ok and seen == {"failed": 0}, result


def test_rlimit_fallback_limits_each_process_not_the_run(sandbox_options):
    """Documented behaviour without cgroups: RLIMIT_AS is per process, so all four 300 MiB
    children (each under 512 MiB of address space) succeed, 1200 MiB in all."""
    box = bwrap(sandbox_options, cgroups="off")
    assert box.cgroups is None
    result, seen = run_json(box, FOUR_TIMES_300_MIB, limits=AGGREGATE_LIMITS)
    assert result.ok and seen == {"failed": 0}, result
    assert_nothing_left(box)


FORK_UNTIL_REFUSED = r"""
import json, os, resource, time
forks, refused = 0, None
while forks < 1000:
    try:
        pid = os.fork()
    except OSError as exc:
        refused = exc.errno
        break
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    forks += 1
soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
print(json.dumps({"forks": forks, "refused": refused, "nproc": -1 if soft == resource.RLIM_INFINITY else soft}))
"""


def test_pids_max_caps_a_fork_loop(cgroup_box):
    """pids.max = max_processes + 2 (bwrap and its namespace init); the program is one more,
    so with max_processes = 10 it gets 10 + 2 - 3 = 9 children, then EAGAIN. RLIMIT_NPROC is
    not set on this path (it keeps the service's, unlimited or far above 12; the run's uid has
    no other processes), so the cgroup is what counted."""
    limits = replace(TEST_LIMITS, max_processes=10, wall_time_s=10)
    result, seen = run_json(cgroup_box, FORK_UNTIL_REFUSED, limits=limits)
    assert (seen["forks"], seen["refused"]) == (9, errno.EAGAIN)
    assert seen["nproc"] == -1 or seen["nproc"] > 100, seen
    assert result.exit_code == 0
    assert_nothing_left(cgroup_box)


def test_cpu_max_throttles_the_run(sandbox_options):
    """cpu_cores = 0.2: two processes spinning for 2 s of wall time get at most
    0.2 × 2 s = 0.4 s of CPU between them (+ one 100 ms period of slack, rounded up);
    unthrottled they would get about 2 s each, less what other load takes."""
    box = bwrap(sandbox_options, cpu_cores=0.2)
    if box.cgroups is None or "cpu" not in box.cgroups.controllers:
        pytest.skip(f"no cpu cgroup controller here: {box.cgroups_missing or box.cgroups.describe()}")
    code = r"""
import json, os, time
def spin():
    end = time.monotonic() + 2
    while time.monotonic() < end:
        pass
pid = os.fork()
if pid == 0:
    spin(); os._exit(0)
spin()
os.waitpid(pid, 0)
times = os.times()
print(json.dumps({"cpu": times.user + times.system + times.children_user + times.children_system}))
"""
    result, seen = run_json(box, code, limits=replace(TEST_LIMITS, wall_time_s=20, cpu_time_s=10))
    assert result.ok, result.stderr
    assert seen["cpu"] < 0.6


def test_run_cgroups_are_removed_after_every_kind_of_end(cgroup_box, marker):
    """Normal exit, OOM kill, wall-time kill with a background child, fork refusal: no
    run cgroup of this process is left, and the parent folders stay (they are shared)."""
    background = "import os, time\nif os.fork() == 0:\n    time.sleep(60)\ntime.sleep(60)\n"
    ends = [
        cgroup_box.run("print(1)", TEST_LIMITS),
        cgroup_box.run(FOUR_TIMES_300_MIB, AGGREGATE_LIMITS),
        cgroup_box.run(background, replace(TEST_LIMITS, wall_time_s=1.0), command=["python3", "main.py", marker]),
        cgroup_box.run(FORK_UNTIL_REFUSED, replace(TEST_LIMITS, max_processes=4)),
    ]
    assert [end.limit_hit for end in ends[:3]] == [LimitHit.NONE, LimitHit.MEMORY, LimitHit.WALL_TIME]
    assert leftover_run_cgroups(cgroup_box) == []
    assert all(parent.is_dir() for parent in cgroup_box.cgroups.parents.values())
    assert_nothing_left(cgroup_box, marker)


def test_describe_names_the_limit_mechanism_and_filter(sandbox_options):
    with_cgroups = bwrap(sandbox_options)
    without = bwrap(sandbox_options, cgroups="off", seccomp=False)
    if with_cgroups.cgroups is not None:
        assert f"cgroup v{with_cgroups.cgroups.version}" in with_cgroups.describe()
    assert "seccomp filter on" in with_cgroups.describe()
    assert without.describe() == (
        "bwrap: rlimits per process only (cgroups turned off (sandbox.cgroups: off)); seccomp filter OFF")


def test_a_required_cgroup_version_that_is_missing_refuses_by_name(sandbox_options):
    """`cgroups: v2` (or v1) is a requirement: without it the backend is unavailable,
    and the reason names the setting and what is missing."""
    missing = [mode for mode in ("v2", "v1") if BwrapSandbox.unavailable_reason(replace(sandbox_options, cgroups=mode))]
    if not missing:
        pytest.skip("both cgroup versions are usable here: nothing is missing to refuse")
    with pytest.raises(SandboxUnavailable, match=rf"sandbox.cgroups is '{missing[0]}' but cgroup {missing[0]}: "):
        make_sandbox("bwrap", replace(sandbox_options, cgroups=missing[0]))
