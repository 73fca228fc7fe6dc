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


class ResourceExhausted(ServiceError):
    code = grpc.StatusCode.RESOURCE_EXHAUSTED


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
