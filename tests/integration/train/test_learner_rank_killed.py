"""A learner whose rank the kernel kills (the out-of-memory killer sends SIGKILL) is named as
such when `outrider train` restarts it: torchrun itself exits 1 whatever its rank died of,
so the supervisor reads torchrun's failure report in the learner's log.

A real torchrun runs a one-line rank that SIGKILLs itself, as the OOM killer would."""

from __future__ import annotations

import os
import re
import sys

from outrider.train.processes import Supervised

RANK = "import os, signal; os.kill(os.getpid(), signal.SIGKILL)"


def test_a_rank_killed_by_sigkill_is_named_in_the_restart_message(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1", "--standalone", str(script)]
    child = Supervised("learner", command, dict(os.environ), tmp_path / "learner.log", restarts_left=0, run_dir=tmp_path)
    child.start()
    assert child.process.wait(timeout=120) == 1  # torchrun's own status: the signal is not in it
    said = child.describe_exit()
    assert re.search(r"stopped: exit status 1 after rank 0 was killed by signal 9 \(SIGKILL: if nobody sent it, "
                     r"most likely the kernel's out-of-memory killer", said), said + child.log_path.read_text()[-2000:]


def test_a_learner_that_failed_otherwise_gets_no_signal_story(tmp_path):
    # The log is appended across restarts: an earlier start's killed rank is not this one's.
    (tmp_path / "learner.log").write_text("  rank      : 0 (local_rank: 0)\n  exitcode  : -9 (pid: 14904)  (SIGKILL)\n")
    script = tmp_path / "rank.py"
    script.write_text("raise SystemExit(3)")
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node=1", "--standalone", str(script)]
    child = Supervised("learner", command, dict(os.environ), tmp_path / "learner.log", restarts_left=0, run_dir=tmp_path)
    child.start()
    assert child.process.wait(timeout=120) == 1
    assert child.describe_exit().endswith(f"stopped: exit status 1; log: {child.log_path}")
