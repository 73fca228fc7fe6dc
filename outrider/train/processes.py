"""The supervised processes of a local training run: Celery rollout workers and the learner.

Both are restarted when they die (the work they held is not lost: Celery
re-queues an unacknowledged task, the learner resumes from its checkpoint and
the bus hands its unfinished groups back), up to a restart budget.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from outrider.learner.status import read_status
from outrider.process import STALL_EXIT_CODE, dying_with_this_process
from outrider.rollout.worker import QUEUE
from outrider.train.torchrun import torchrun_command

log = logging.getLogger(__name__)


@dataclass
class Supervised:
    """A child process and how to start it again."""

    name: str
    command: list[str]
    env: dict[str, str]
    log_path: Path
    restarts_left: int
    process: subprocess.Popen | None = None
    exits: list[int] = field(default_factory=list)
    run_dir: Path | None = None
    """The learner's run folder: its status file names a stall (torchrun exits 1 whatever
    status its rank ended with)."""
    started_unix: float = 0.0
    log_offset: int = 0
    """Where this start's output begins in the (appended) log."""

    def start(self) -> None:
        self.started_unix = time.time()
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "a") as out:
            self.process = subprocess.Popen(
                dying_with_this_process(self.command),  # no orphans if `outrider train` is killed
                stdout=out,
                stderr=subprocess.STDOUT,
                env=self.env,
                start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops children in order
            )
        log.info("started %s (pid %d)", self.name, self.process.pid)

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def exit_code(self) -> int | None:
        return self.process.poll() if self.process else None

    def describe_exit(self) -> str:
        code = self.process.returncode
        status = f"killed by signal {-code}" if code < 0 else f"exit status {code}"
        if code == STALL_EXIT_CODE:
            status += " (its watchdog found it stalled; the log names what it was doing)"
        learner = read_status(self.run_dir) if self.run_dir is not None else None
        if learner and learner.get("phase") == "stalled" and learner.get("since_unix", 0) >= self.started_unix:
            status += f" after its watchdog found it stalled ({learner.get('detail')})"
        elif self.run_dir is not None and (killed := rank_killed_by(self.log_path, self.log_offset)):
            status += f" after {killed}"
        return f"{self.name} (pid {self.process.pid}) stopped: {status}; log: {self.log_path}"

    def stop(self, timeout_s: float = 20.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass


_RANK_EXIT = re.compile(r"rank\s*: (\d+) \(local_rank: \d+\)\s*\n\s*exitcode\s*: -(\d+) \(pid: \d+\)")
"""torchrun's report of a rank that died of a signal (its own exit status is 1 whatever
the rank's was): `rank : 0 (local_rank: 0)` then `exitcode : -9 (pid: 14904)`."""


def rank_killed_by(log_path: Path, offset: int = 0) -> str | None:
    """"rank 0 was killed by signal 9 (SIGKILL: ...)" when the last failure torchrun wrote
    to the learner's log after `offset` (where the run that just ended began) is a rank
    killed by a signal, else None. SIGKILL that nobody sent on purpose is, on a small
    machine, most often the kernel's out-of-memory killer."""
    try:
        with open(log_path, "rb") as source:
            source.seek(offset)
            output = source.read().decode(errors="replace")
    except OSError:
        return None
    found = _RANK_EXIT.findall(output)
    if not found:
        return None
    rank, number = found[-1][0], int(found[-1][1])
    name = signal.Signals(number).name if number in signal.valid_signals() else f"signal {number}"
    why = ": if nobody sent it, most likely the kernel's out-of-memory killer (`dmesg` says)" if number == signal.SIGKILL else ""
    return f"rank {rank} was killed by signal {number} ({name}{why})"


def _env(run_config_path: Path, threads: int | None = None) -> dict[str, str]:
    env = {**os.environ, "OUTRIDER_RUN_CONFIG": str(run_config_path), "PYTHONUNBUFFERED": "1"}
    if threads is not None:
        env.setdefault("OMP_NUM_THREADS", str(threads))
    return env


def rollout_worker(index: int, run_config_path: Path, log_dir: Path, restarts: int, groups: int = 1) -> Supervised:
    """A Celery worker playing `groups` groups at once: threads when more than one (a
    rollout waits on RPCs, and threads share one process's clients), else one prefork child."""
    pool = ["--pool=threads", f"--concurrency={groups}"] if groups > 1 else ["--pool=prefork", "--concurrency=1"]
    command = [
        sys.executable, "-m", "celery", "-A", "outrider.rollout.worker", "worker",
        *pool, f"--queues={QUEUE}", f"--hostname=rollout{index}@%h",
        "--loglevel=INFO", "--without-gossip", "--without-mingle",
    ]
    # A rollout worker mostly waits on RPCs: one thread is plenty.
    env = _env(run_config_path, threads=1)
    return Supervised(f"rollout-worker-{index}", command, env, log_dir / f"rollout-worker-{index}.log", restarts)


def learner(run_config_path: Path, ranks: int, log_dir: Path, restarts: int, resume: bool,
            run_dir: Path | None = None) -> Supervised:
    command = torchrun_command(run_config_path, ranks, resume=resume)
    # torchrun gives each of several ranks one thread; a single rank may use them all.
    return Supervised("learner", command, _env(run_config_path), log_dir / "learner.log", restarts, run_dir=run_dir)


def restart(child: Supervised, resume_flag: str | None = None) -> bool:
    """Start a dead child again if its budget allows; False when it is spent."""
    child.exits.append(child.process.returncode)
    if child.restarts_left <= 0:
        return False
    child.restarts_left -= 1
    if resume_flag and resume_flag not in child.command:
        child.command = [*child.command, resume_flag]
    log.warning("%s; restarting (%d restarts left)", child.describe_exit(), child.restarts_left)
    child.start()
    return True
