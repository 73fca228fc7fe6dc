"""HTTP request bounds of the OpenAI API that hold before any request is parsed."""

from __future__ import annotations

import json


class BodyLimit:
    """ASGI middleware: a request body longer than `max_bytes` is refused with 413 before
    any of it is parsed (JSON parsing of a huge body costs memory and time before a field
    can be checked). A declared length is checked up front; an undeclared (chunked) body is
    read here, up to the limit, and handed on whole."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.max_bytes:
                return await self._refuse(send, f"{int(declared)} bytes")
            return await self.app(scope, receive, send)
        parts, seen = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break  # the client went away: let the app see it
            parts.append(message.get("body", b""))
            seen += len(parts[-1])
            if seen > self.max_bytes:
                return await self._refuse(send, f"more than {self.max_bytes} bytes")
            if not message.get("more_body"):
                break
        replay = [{"type": "http.request", "body": b"".join(parts), "more_body": False}]

        async def replayed():
            return replay.pop() if replay else await receive()

        await self.app(scope, replayed, send)

    async def _refuse(self, send, what: str) -> None:
        body = json.dumps({"error": {"message": f"request body: {what} exceed the limit of {self.max_bytes} bytes "
                                                 "(server.max_message_bytes)", "type": "invalid_request_error",
                                     "param": None, "code": "request_too_large"}}).encode()
        await send({"type": "http.response.start", "status": 413,
                    "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
