"""Process helpers shared by the supervisors (local stack, learner launcher)."""

from __future__ import annotations

import ctypes
import signal

_PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """Ask Linux to send `sig` to this process when its parent dies.

    Supervised children (services under `outrider up`, learner ranks under
    torchrun) call this so that a SIGKILLed supervisor leaves no orphans.
    """
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, sig)
