"""The policy server on a thread of this process, with its own event loop.

    with PolicyServerThread(cfg) as server:
        openai.OpenAI(base_url=server.http_url, ...)

The server is the production one (`create_server`: gRPC and the OpenAI HTTP API). Its
own loop on a background thread lets synchronous callers (the `openai` client, the
gRPC clients, the CLI) talk to it from the same process: what tests and benches do.
"""

from __future__ import annotations

import asyncio
import threading

from outrider.config.policy import PolicyServiceConfig


class PolicyServerThread:
    """Start a policy server in a background thread; stop it on exit."""

    def __init__(self, cfg: PolicyServiceConfig):
        self.cfg = cfg
        self.server = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="policy-server", daemon=True)

    def _run(self) -> None:
        async def serve() -> None:
            from outrider.services.policy.server import create_server

            self.loop = asyncio.get_running_loop()
            self._stop = asyncio.Event()
            self.server = await create_server(self.cfg)
            await self.server.start()
            self._ready.set()
            await self._stop.wait()
            await self.server.stop(self.cfg.server.grace_s)

        try:
            asyncio.run(serve())
        except BaseException as exc:  # noqa: BLE001 - re-raised in the test thread by start()
            self._error = exc
        finally:
            self._ready.set()

    def start(self, timeout_s: float = 600) -> PolicyServerThread:
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError(f"policy server did not start within {timeout_s} s")
        if self._error is not None:
            raise RuntimeError("policy server failed to start") from self._error
        return self

    def stop(self) -> None:
        if self.loop is not None and self._stop is not None and self._thread.is_alive():
            self.loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=120)

    def call(self, coroutine, timeout_s: float = 120):
        """Run a coroutine on the server's loop (e.g. to inspect the core) and return its result."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(timeout_s)

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.server.http_port}/v1"

    def __enter__(self) -> PolicyServerThread:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
