"""`python -m outrider.services.reward.main --config FILE`."""

from __future__ import annotations

import sys

from outrider.serving.entry import run_service
from outrider.services.reward.server import create_server


def main(argv: list[str] | None = None) -> int:
    return run_service("reward", create_server, argv)


if __name__ == "__main__":
    sys.exit(main())
