"""`python -m outrider.services.policy.main --config FILE` (or `outrider serve policy`)."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    from outrider.serving.entry import run_service
    from outrider.services.policy.factory import PolicyStartError
    from outrider.services.policy.server import create_server

    try:
        return run_service("policy", create_server, argv)
    except PolicyStartError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


# vLLM starts its engine processes with spawn, which re-imports this module: the guard matters.
if __name__ == "__main__":
    sys.exit(main())
