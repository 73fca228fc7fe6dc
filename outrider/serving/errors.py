"""Errors a servicer raises to answer with a proper gRPC status.

Servicers stay thin: they validate, delegate and raise one of these; the
interceptor in `outrider.serving.server` turns it into the status code with
the message, and the server keeps serving.
"""

from __future__ import annotations

import grpc


class ServiceError(Exception):
    """An RPC failure with a status code and a message naming the problem."""

    code = grpc.StatusCode.INTERNAL

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        """Metadata sent with the status (none by default)."""
        return ()


class InvalidArgument(ServiceError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFound(ServiceError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExists(ServiceError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPrecondition(ServiceError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class PermissionDenied(ServiceError):
    code = grpc.StatusCode.PERMISSION_DENIED


RETRY_AFTER_MS = "retry-after-ms"
"""Trailing-metadata key of a refusal for load: milliseconds after which a retry may be admitted."""


class ResourceExhausted(ServiceError):
    """Refused for load (or a quota). With `retry_after_ms`, the status carries the hint as
    trailing metadata `retry-after-ms` and its message ends with "retry in N ms" (the OpenAI
    HTTP API sends it as `Retry-After`, whole seconds rounded up)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED

    def __init__(self, message: str, retry_after_ms: int | None = None):
        if retry_after_ms is not None:
            message = f"{message}; retry in {retry_after_ms} ms"
        super().__init__(message)
        self.retry_after_ms = retry_after_ms

    def trailing_metadata(self) -> tuple[tuple[str, str], ...]:
        return () if self.retry_after_ms is None else ((RETRY_AFTER_MS, str(self.retry_after_ms)),)


class Unavailable(ServiceError):
    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceeded(ServiceError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class OutOfRange(ServiceError):
    code = grpc.StatusCode.OUT_OF_RANGE


class Internal(ServiceError):
    code = grpc.StatusCode.INTERNAL


class Unimplemented(ServiceError):
    code = grpc.StatusCode.UNIMPLEMENTED
