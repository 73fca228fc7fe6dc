"""Publishing the learner's weights to the policy service, with a version.

`shm` mode (same host) writes one safetensors file in the served dtype to the
policy's staging root and sends its path (`staged_weights.py`); `stream` mode
sends the tensors themselves over gRPC (TensorChunk messages; any host);
`path` mode exports an HF folder on storage both sides can read and sends its
path. `auto` picks `shm` for a policy on a loopback address, else `stream`.
Either way the policy service swaps atomically and reports the version with
every response, which is how rollouts learn their staleness.
"""

from __future__ import annotations

import ipaddress
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import grpc
import torch.distributed as dist

from outrider.clients.policy import PolicyClient
from outrider.config.learner import WeightSyncConfig
from outrider.learner.checkpoint import export_hf, full_state_dict
from outrider.learner.staged_weights import WeightsStager
from outrider.models.tensors import DTYPES

log = logging.getLogger(__name__)

# What the policy answers when it cannot use a staged file it was sent: it cannot see
# this host's file (NOT_FOUND: another mount namespace) or stages elsewhere (PERMISSION_DENIED).
_NOT_SHARED = (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.PERMISSION_DENIED)
# Failures a later sync can get past: the policy is slow, restarting or busy. The policy
# swaps only complete, checked updates, so it keeps serving its previous version.
_TRANSIENT = (
    grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED,
    grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.ABORTED,
)


class WeightSyncError(RuntimeError):
    """A weights update the policy did not take (deadline passed, policy unavailable).

    Raised on every rank alike (rank 0 decides), so the ranks stay in step."""


def same_host(address: str) -> bool:
    """True for a loopback `host:port` (127.0.0.0/8, ::1, localhost) or a unix socket."""
    if address.startswith("unix:"):
        return True
    target = address.removeprefix("dns:///").removeprefix("ipv4:").removeprefix("ipv6:")
    host = target.rsplit(":", 1)[0] if ":" in target else target
    host = host.strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_mode(mode: str, address: str | None) -> str:
    if mode != "auto":
        return mode
    return "shm" if address is not None and same_host(address) else "stream"


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
        self.mode = resolve_mode(cfg.mode, address)
        """The mode in use: `auto` resolved, and `stream` after a fallback."""
        self._stager = WeightsStager() if self.mode == "shm" and self.rank == 0 else None

    @property
    def enabled(self) -> bool:
        return self.mode != "none"

    def _policy(self):
        if self._client is None:
            self._client = PolicyClient(self.address, timeout_s=self.cfg.timeout_s)
        return self._client

    def publish(self, engine, version: int) -> dict[str, float]:
        """Send the weights as `version`; returns timing metrics (rank 0)."""
        if not self.enabled:
            return {}
        started = time.perf_counter()
        phases: dict[str, float] = {}
        mode = self.mode
        failure: str | None = None
        reply = None
        try:
            if mode == "path":
                folder = self.weights_dir / f"v{version:07d}"
                export_hf(engine, folder, self.tokenizer_from)
                phases["sync/export_seconds"] = time.perf_counter() - started
                if self.rank == 0:
                    reply = self._timed(phases, lambda: self._policy().update_weights_from_path(version, str(folder)))
                    self._prune(keep=folder)
            else:
                state = full_state_dict(engine)
                phases["sync/gather_seconds"] = time.perf_counter() - started
                if self.rank == 0:
                    reply = self._staged(state, version, phases) if mode == "shm" else None
                    if reply is None:
                        reply = self._timed(phases, lambda: self._policy().update_weights_from_state_dict(version, state))
        except grpc.RpcError as exc:
            if exc.code() not in _TRANSIENT:
                raise
            failure = (
                f"weight sync of version {version} to {self.address} failed after {time.perf_counter() - started:.1f} s "
                f"({exc.code().name}: {exc.details()}); {self._served()}"
            )
        if self.rank == 0 and failure is None:
            phases |= server_phases(reply)
        if dist.is_initialized():
            box = [failure]  # also the barrier: no rank goes on before the policy answered
            dist.broadcast_object_list(box, src=0)
            failure = box[0]
        if failure is not None:
            raise WeightSyncError(failure)
        seconds = time.perf_counter() - started
        log.info("published weights version %d in %.2f s (%s)", version, seconds, mode)
        return {"sync/seconds": seconds, "sync/version": float(version), **phases}

    def _served(self) -> str:
        """What the policy serves after a failed update, for the error message."""
        try:
            return f"the policy serves version {self._policy().info().policy_version}"
        except grpc.RpcError as exc:
            return f"the policy's version is unknown ({exc.code().name})"

    def _staged(self, state, version: int, phases: dict[str, float]):
        """Stage and send `state`; None when `auto` fell back to streaming (then stream it)."""
        assert self._stager is not None
        started = time.perf_counter()
        served = self._policy().info().dtype
        if served not in DTYPES:
            raise RuntimeError(f"the policy serves dtype {served!r}; shm weight sync writes one of {', '.join(DTYPES)}")
        try:
            file = self._stager.write(state, DTYPES[served], version)
        except OSError as exc:
            if self.cfg.mode != "auto":
                raise
            return self._fall_back(f"no staging root on this host can hold the weights ({exc})")
        phases["sync/write_seconds"] = time.perf_counter() - started
        try:
            return self._timed(phases, lambda: self._policy().update_weights_from_staged_file(version, file))
        except grpc.RpcError as exc:
            if self.cfg.mode != "auto" or exc.code() not in _NOT_SHARED:
                raise
            return self._fall_back(f"the policy cannot read staged weights ({exc.code().name}: {exc.details()})")
        finally:
            self._stager.discard(file)

    def _fall_back(self, reason: str) -> None:
        log.warning("weight sync to %s: %s; streaming them from now on", self.address, reason)
        self.mode = "stream"
        assert self._stager is not None
        self._stager.close()

    @staticmethod
    def _timed(phases: dict[str, float], call: Callable):
        started = time.perf_counter()
        reply = call()
        phases["sync/rpc_seconds"] = time.perf_counter() - started
        return reply

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
        if self._stager is not None:
            self._stager.close()
        if self._client is not None:
            self._client.close()


def server_phases(reply) -> dict[str, float]:
    """The policy service's own account of an update (UpdateWeightsResponse), as metrics."""
    return {
        f"sync/policy_{name}": getattr(reply, name)
        for name in ("receive_seconds", "assemble_seconds", "stage_seconds", "reload_seconds", "cache_reset_seconds")
    }
