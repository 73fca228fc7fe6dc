"""Publishing the learner's weights to the policy service, with a version.

`path` mode exports an HF folder on storage both sides can read and sends its
path; `stream` mode sends the tensors themselves over gRPC (TensorChunk
messages). Either way the policy service swaps atomically and reports the
version with every response, which is how rollouts learn their staleness.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

import torch.distributed as dist

from outrider.config.learner import WeightSyncConfig
from outrider.learner.checkpoint import export_hf, full_state_dict

log = logging.getLogger(__name__)


class WeightPublisher:
    """Call `publish` on every rank (gathering weights is collective); rank 0 sends."""

    def __init__(self, cfg: WeightSyncConfig, address: str | None, weights_dir: Path, tokenizer_from: Path):
        self.cfg = cfg
        self.address = address
        self.weights_dir = Path(weights_dir)
        self.tokenizer_from = Path(tokenizer_from)
        self.rank = dist.get_rank() if dist.is_initialized() else 0
        self._client = None
        if cfg.mode != "none" and address is None:
            raise ValueError("weight sync needs the policy service address (learner.sync.address or the run's stack)")

    @property
    def enabled(self) -> bool:
        return self.cfg.mode != "none"

    def _policy(self):
        if self._client is None:
            from outrider.services.policy.client import PolicyClient

            self._client = PolicyClient(self.address, timeout_s=self.cfg.timeout_s)
        return self._client

    def publish(self, engine, version: int) -> dict[str, float]:
        """Send the weights as `version`; returns timing metrics (rank 0)."""
        if not self.enabled:
            return {}
        started = time.perf_counter()
        if self.cfg.mode == "path":
            folder = self.weights_dir / f"v{version:07d}"
            export_hf(engine, folder, self.tokenizer_from)
            if self.rank == 0:
                self._policy().update_weights_from_path(version, str(folder))
                self._prune(keep=folder)
        else:
            state = full_state_dict(engine)
            if self.rank == 0:
                self._policy().update_weights_from_state_dict(version, state)
        if dist.is_initialized():
            dist.barrier()
        seconds = time.perf_counter() - started
        log.info("published weights version %d in %.2f s (%s)", version, seconds, self.cfg.mode)
        return {"sync/seconds": seconds, "sync/version": float(version)}

    def reconcile(self, engine, version: int) -> int:
        """Make the policy serve this learner's weights; return their version.

        Versions must increase at the policy. If it already serves `version`,
        it serves these weights (a version names one learner step). If it
        serves a newer one (published by an earlier life of this run, after
        the checkpoint we restarted from, or by another run), these weights go
        out as the next version instead, and numbering continues from there.
        """
        if not self.enabled:
            return version
        served = [self._policy().info().policy_version if self.rank == 0 else 0]
        if dist.is_initialized():
            dist.broadcast_object_list(served, src=0)
        if served[0] == version:
            return version
        target = max(version, served[0] + 1)
        self.publish(engine, target)
        return target

    def _prune(self, keep: Path) -> None:
        # The policy may still be loading the previous folder: keep two.
        folders = sorted(p for p in self.weights_dir.glob("v*") if p.is_dir())
        for folder in folders[:-2]:
            if folder != keep:
                shutil.rmtree(folder, ignore_errors=True)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
