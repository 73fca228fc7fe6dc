"""What authentication costs per call (issue 17): the same policy service with no
credentials, bearer tokens, TLS + token and mTLS, side by side in one run.

    .venv/bin/python bench/auth.py [--rounds 300] [--max-tokens 16] [--out FILE.json]

Four policy services (the production process, `python -m outrider.services.policy.main`,
HF backend, `tiny-random`, float32), one per arm, all started before the first call:

* **insecure** — no `server.auth`, a plaintext channel;
* **token** — `server.auth.token_files`, a plaintext loopback channel with the client token
  in the metadata (what `outrider up`/`train` do by default);
* **tls+token** — the token over TLS (server certificate only);
* **mtls** — a client certificate, no token (`stack.auth: mtls` without the token).

Credentials come from `outrider.serving.credentials.generate` (ECDSA P-256). One client per
arm (the production `PolicyClient`, one channel, opened and warmed before timing). Each round
makes, for every arm in an order rotated round by round, one `GetInfo` (almost no work:
the check's cost is most visible) and one `Generate` of `--max-tokens` tokens (a real call).
Reported: client-side wall latency p50/p90 per arm and method, and each arm's p50 over
insecure's (goal: <= 1.05 at p50).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ARMS = ("insecure", "token", "tls+token", "mtls")


def _config(folder: Path, arm: str, auth: Path) -> Path:
    from outrider.config import dump_yaml
    from outrider.config.common import AuthConfig, ServerConfig, TlsConfig
    from outrider.config.policy import PolicyServiceConfig

    tokens = {"client": str(auth / "client.token"), "admin": str(auth / "admin.token")}
    tls = TlsConfig(cert_file=str(auth / "server.pem"), key_file=str(auth / "server-key.pem"),
                    client_ca_file=str(auth / "ca.pem") if arm == "mtls" else None)
    server_auth = {"insecure": AuthConfig(), "token": AuthConfig(token_files=tokens),
                   "tls+token": AuthConfig(token_files=tokens, tls=tls), "mtls": AuthConfig(token_files=tokens, tls=tls)}[arm]
    cfg = PolicyServiceConfig(backend="hf", model="tiny-random", dtype="float32", http_port=None,
                              server=ServerConfig(metrics_port=None, auth=server_auth))
    path = folder / f"{arm.replace('+', '-')}.yaml"
    path.write_text(dump_yaml(cfg))
    return path


def _start(config: Path) -> tuple[subprocess.Popen, int]:
    process = subprocess.Popen([sys.executable, "-m", "outrider.services.policy.main", "--config", str(config)],
                               stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                               env={**os.environ, "OMP_NUM_THREADS": "1"})
    deadline = time.monotonic() + 300
    for line in process.stdout:
        if match := re.search(r"OUTRIDER_READY service=\S+ port=(\d+)", line):
            return process, int(match.group(1))
        if time.monotonic() > deadline:
            break
    process.kill()
    raise RuntimeError(f"{config}: the policy service did not start")


def _credentials(arm: str, auth: Path):
    from outrider.serving.credentials import ClientCredentials

    token = (auth / "client.token").read_text().strip()
    return {
        "insecure": ClientCredentials(),
        "token": ClientCredentials(token=token),
        "tls+token": ClientCredentials(token=token, ca_file=str(auth / "ca.pem")),
        "mtls": ClientCredentials(ca_file=str(auth / "ca.pem"), cert_file=str(auth / "client.pem"), key_file=str(auth / "client-key.pem")),
    }[arm]


def _quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=300)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    from outrider.clients.policy import PolicyClient
    from outrider.serving.credentials import generate

    folder = Path(tempfile.mkdtemp(prefix="bench-auth-"))
    auth = generate(folder / "auth", tls=True)
    processes, clients = [], {}
    try:
        for arm in ARMS:
            process, port = _start(_config(folder, arm, auth))
            processes.append(process)
            clients[arm] = PolicyClient(f"127.0.0.1:{port}", credentials=_credentials(arm, auth))
        prompt = clients["insecure"].tokenize(["The quick brown fox"])[0]
        times: dict[tuple[str, str], list[float]] = {(arm, m): [] for arm in ARMS for m in ("GetInfo", "Generate")}
        for round_index in range(args.warmup + args.rounds):
            shift = round_index % len(ARMS)
            for arm in ARMS[shift:] + ARMS[:shift]:
                client = clients[arm]
                start = time.perf_counter()
                client.info()
                info_s = time.perf_counter() - start
                start = time.perf_counter()
                client.generate([prompt], n=1, max_tokens=args.max_tokens, ignore_eos=True, temperature=1.0, seed=round_index)
                generate_s = time.perf_counter() - start
                if round_index >= args.warmup:
                    times[(arm, "GetInfo")].append(info_s)
                    times[(arm, "Generate")].append(generate_s)
        result = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores", "rounds": args.rounds,
                  "max_tokens": args.max_tokens, "date": time.strftime("%Y-%m-%d"), "arms": {}}
        for method in ("GetInfo", "Generate"):
            base = statistics.median(times[("insecure", method)])
            print(f"{method} ({args.rounds} calls per arm):")
            for arm in ARMS:
                values = times[(arm, method)]
                p50, p90 = statistics.median(values), _quantile(values, 0.9)
                result["arms"].setdefault(arm, {})[method] = {"p50_ms": p50 * 1e3, "p90_ms": p90 * 1e3, "ratio_p50": p50 / base}
                print(f"  {arm:<10} p50 {p50 * 1e3:8.3f} ms  p90 {p90 * 1e3:8.3f} ms  p50 / insecure {p50 / base:.3f}")
        if args.out:
            args.out.write_text(json.dumps(result, indent=2))
    finally:
        for client in clients.values():
            client.close()
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


if __name__ == "__main__":
    main()
