"""Shared gRPC serving: server construction, lifecycle, errors, logs, metrics."""

from outrider.serving.errors import (
    AlreadyExists,
    DeadlineExceeded,
    FailedPrecondition,
    Internal,
    InvalidArgument,
    NotFound,
    OutOfRange,
    PermissionDenied,
    ResourceExhausted,
    ServiceError,
    Unavailable,
    Unimplemented,
)
from outrider.serving.server import BuiltServer, build_server, run_until_signalled

__all__ = [
    "AlreadyExists",
    "BuiltServer",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "OutOfRange",
    "PermissionDenied",
    "ResourceExhausted",
    "ServiceError",
    "Unavailable",
    "Unimplemented",
    "build_server",
    "run_until_signalled",
]
