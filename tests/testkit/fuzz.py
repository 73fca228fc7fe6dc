"""Protobuf fuzzing of a real service process over gRPC (tests/integration/fuzz/).

    with ServiceUnderFuzz.start("reward", cfg, tmp_path) as target:
        fuzz_method(target, method_descriptor, cases=500)

`ServiceUnderFuzz` runs `python -m outrider.services.<name>.main --config FILE` (what
`outrider up` runs) and talks to it over a raw channel: requests go out as bytes, so a
case can be a generated message (tests/testkit/proto_strategies.py), a valid encoding
with bytes changed, or arbitrary bytes. After every case the process must be alive and
the reply OK or a status other than those in `BAD_CODES`; every `RSS_EVERY` cases its
resident memory must stay under `rss_limit_bytes`.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import grpc
from google.protobuf import message_factory
from google.protobuf.descriptor import MethodDescriptor
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from testkit.proto_strategies import messages, mutated, raw_bytes
from testkit.service_process import ServiceProcess, rss_bytes, stop_process

BAD_CODES = {
    grpc.StatusCode.UNKNOWN: "an exception escaped the handler",
    grpc.StatusCode.INTERNAL: "the server failed (or sent a reply that does not decode)",
    grpc.StatusCode.UNAVAILABLE: "the server stopped answering",
    grpc.StatusCode.DEADLINE_EXCEEDED: "no reply within the (generous) deadline: a hang",
    grpc.StatusCode.CANCELLED: "the call was cancelled",
    grpc.StatusCode.DATA_LOSS: "data loss",
}
"""Statuses no request may cause: each means the handler broke, not that the request was bad.
The deadline is generous (`CALL_DEADLINE_S`) against the few milliseconds a bounded case takes,
so DEADLINE_EXCEEDED is a hang, not a slow answer."""

CLIENT_SIDE_FAILURES = {
    "received metadata size exceeds": "the status message is too long for the client's trailer limit",
}
"""Details of a status the client library made up because the server's answer was unusable."""

CALL_DEADLINE_S = 60.0
RSS_EVERY = 25
"""Cases between two reads of the service's resident memory."""

RSS_HEADROOM_BYTES = 512 * 2**20
"""How far above its resident memory after start-up a service may grow during the fuzz run.
Every case is bounded (a few KiB of request, at most the configured limits of work), so a
well-behaved server's memory plateaus within tens of MiB (allocator arenas, caches); a steady
leak crosses the bound from about 270 KiB a case in 2,000 cases, 55 KiB a case in 10,000."""

DEFAULT_CASES = 2000


def fuzz_cases() -> int:
    """Cases per service: OUTRIDER_FUZZ_CASES (default 2,000; the longer run uses 10,000)."""
    value = os.environ.get("OUTRIDER_FUZZ_CASES", str(DEFAULT_CASES))
    try:
        cases = int(value)
    except ValueError:
        raise ValueError(f"OUTRIDER_FUZZ_CASES must be an integer, got {value!r}") from None
    if cases < 1:
        raise ValueError(f"OUTRIDER_FUZZ_CASES must be at least 1, got {cases}")
    return cases


@dataclass
class ServiceUnderFuzz:
    name: str
    process: subprocess.Popen
    log_path: Path
    address: str
    baseline_rss: int = 0
    peak_rss: int = 0
    codes: Counter = field(default_factory=Counter)
    """(method, status name) -> cases answered so."""
    first_details: dict = field(default_factory=dict)
    """(method, status name) -> the details of the first such answer (a reviewer's sample)."""
    reasons: Counter = field(default_factory=Counter)
    """(method, status name, the details' first 48 characters) -> cases: how deep cases get."""
    channel: grpc.Channel | None = None

    @classmethod
    def start(cls, name: str, cfg, folder: Path, timeout_s: float = 300.0) -> ServiceUnderFuzz:
        """Start service `name` with config model `cfg` (its server on port 0); wait for SERVING."""
        spawned = ServiceProcess.start(name, cfg, folder, timeout_s)
        target = cls(name, spawned.process, spawned.log_path, spawned.address)
        target.channel = grpc.insecure_channel(target.address, options=[("grpc.max_receive_message_length", 64 * 2**20)])
        return target

    def set_baseline(self) -> None:
        """Record the memory the fuzz run's bound is measured from (after warm-up calls)."""
        self.baseline_rss = self.peak_rss = rss_bytes(self.process.pid)

    @property
    def rss_limit_bytes(self) -> int:
        return self.baseline_rss + RSS_HEADROOM_BYTES

    def check_health(self, context: str) -> None:
        """The process is alive and under its memory bound."""
        code = self.process.poll()
        assert code is None, f"{self.name} service died ({_describe_exit(code)}) after {context}; log tail:\n{self.log_tail()}"
        rss = rss_bytes(self.process.pid)
        self.peak_rss = max(self.peak_rss, rss)
        assert rss <= self.rss_limit_bytes, (
            f"{self.name} service RSS {rss / 2**20:.0f} MiB exceeds its bound {self.rss_limit_bytes / 2**20:.0f} MiB "
            f"(baseline {self.baseline_rss / 2**20:.0f} MiB + {RSS_HEADROOM_BYTES / 2**20:.0f} MiB) after {context}"
        )

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log_path.read_text()[-chars:]
        except OSError:
            return ""

    def stop(self) -> int:
        if self.channel is not None:
            self.channel.close()
        return stop_process(self.process)


def _describe_exit(code: int | None) -> str:
    return f"killed by signal {-code}" if code is not None and code < 0 else f"exit status {code}"


def path_of(method: MethodDescriptor) -> str:
    return f"/{method.containing_service.full_name}/{method.name}"


def call_raw(target: ServiceUnderFuzz, method: MethodDescriptor, payload) -> tuple[grpc.StatusCode, str]:
    """Send one request (bytes, or a list of bytes for a client-streaming method) and return
    its status and details; replies are decoded as the method's output type."""
    output = message_factory.GetMessageClass(method.output_type).FromString
    path = path_of(method)
    try:
        if method.client_streaming:
            target.channel.stream_unary(path, response_deserializer=output)(iter(payload), timeout=CALL_DEADLINE_S)
        elif method.server_streaming:
            for _ in target.channel.unary_stream(path, response_deserializer=output)(payload, timeout=CALL_DEADLINE_S):
                pass
        else:
            target.channel.unary_unary(path, response_deserializer=output)(payload, timeout=CALL_DEADLINE_S)
    except grpc.RpcError as error:
        return error.code(), error.details() or ""
    return grpc.StatusCode.OK, ""


def payloads(method: MethodDescriptor, overrides: dict | None = None, plausible: dict | None = None) -> tuple[st.SearchStrategy, st.SearchStrategy]:
    """(generated requests, byte-level requests) for `method`, both as what `call_raw` sends.
    With `plausible` (overrides of valid values), half the generated requests are plausible:
    every repeated field non-empty, every oneof set, those fields valid, so they reach the
    method's real work."""
    typed = messages(method.input_type, overrides=overrides)
    if plausible is not None:
        typed = st.one_of(typed, messages(method.input_type, overrides={**(overrides or {}), **plausible}, min_repeated=1, max_repeated=3, oneof_set=True))
    encoded = typed.map(lambda m: m.SerializeToString())
    noisy = st.one_of(raw_bytes(), mutated(encoded))
    if method.client_streaming:
        return st.lists(encoded, max_size=4), st.lists(st.one_of(encoded, noisy), min_size=1, max_size=4)
    return encoded, noisy


def _run(target: ServiceUnderFuzz, method: MethodDescriptor, strategy: st.SearchStrategy, examples: int, label: str) -> int:
    sent = [0]
    first_failure: list = []

    @settings(
        max_examples=examples, deadline=None, derandomize=True, database=None,
        phases=[Phase.explicit, Phase.generate, Phase.shrink],
        suppress_health_check=list(HealthCheck),
    )
    @given(strategy)
    def case(payload) -> None:
        sent[0] += 1
        code, details = call_raw(target, method, payload)
        target.codes[(method.name, code.name)] += 1
        target.first_details.setdefault((method.name, code.name), details[:300])
        target.reasons[(method.name, code.name, details[:48])] += 1
        failed = code in BAD_CODES or any(text in details for text in CLIENT_SIDE_FAILURES)
        if (failed or target.process.poll() is not None) and not first_failure:
            first_failure.append(payload)  # shrinking a crash replays against a dead server: keep the real input
        assert code not in BAD_CODES, f"{method.name} ({label}) -> {code.name} ({BAD_CODES[code]}): {details}"
        broken = [why for text, why in CLIENT_SIDE_FAILURES.items() if text in details]
        assert not broken, f"{method.name} ({label}) -> {code.name} ({broken[0]}): {details}"
        if sent[0] % RSS_EVERY == 0:
            target.check_health(f"{method.name} case {sent[0]} ({label})")
        else:
            assert target.process.poll() is None, f"{target.name} service died after a {method.name} case; log tail:\n{target.log_tail()}"

    try:
        case()
    except Exception as error:  # noqa: BLE001 - re-raised with the input that failed first
        if first_failure:
            error.add_note(f"the first failing request ({label}): {first_failure[0]!r:.4000}")
        raise
    return sent[0]


def fuzz_method(
    target: ServiceUnderFuzz, method: MethodDescriptor, cases: int, overrides: dict | None = None, plausible: dict | None = None
) -> dict[str, int]:
    """About `cases` requests to `method`, half generated messages and half byte-level; the
    byte-level half tops up when the message space is too small for half (an empty request
    message has one encoding). Returns the counts sent of each kind."""
    typed, noisy = payloads(method, overrides, plausible)
    started = time.monotonic()
    sent_typed = _run(target, method, typed, max(1, cases // 2), "generated")
    sent_noisy = _run(target, method, noisy, max(1, cases - sent_typed), "bytes")
    target.check_health(f"{method.name}'s {sent_typed + sent_noisy} cases")
    return {"generated": sent_typed, "bytes": sent_noisy, "seconds": round(time.monotonic() - started, 1)}
