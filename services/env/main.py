"""`python -m outrider.services.env.main --config FILE` (or `outrider serve env`)."""

from __future__ import annotations

import sys

from outrider.serving.entry import run_service
from outrider.services.env.server import create_server


def main(argv: list[str] | None = None) -> int:
    return run_service("env", create_server, argv)


if __name__ == "__main__":
    sys.exit(main())
