"""One error type carrying a gRPC status code, shared by the REST and gRPC front ends.

TensorFlow Serving reports every failure as a `tensorflow::Status`; the REST
handler turns its code into an HTTP status and the message into
`{"error": "<message>"}`, the gRPC server passes code and message through
unchanged. `ServingError` plays the role of that status here.
"""

import re

import grpc

# The REST handler's mapping from status code to HTTP status
# (tensorflow_serving/model_servers/http_server.cc, ToHTTPStatusCode).
_HTTP_STATUS = {
    grpc.StatusCode.OK: 200,
    grpc.StatusCode.CANCELLED: 499,
    grpc.StatusCode.UNKNOWN: 500,
    grpc.StatusCode.INVALID_ARGUMENT: 400,
    grpc.StatusCode.DEADLINE_EXCEEDED: 504,
    grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409,
    grpc.StatusCode.PERMISSION_DENIED: 403,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429,
    grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.OUT_OF_RANGE: 400,
    grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.INTERNAL: 500,
    grpc.StatusCode.UNAVAILABLE: 503,
    grpc.StatusCode.DATA_LOSS: 500,
    grpc.StatusCode.UNAUTHENTICATED: 401,
}


class ServingError(Exception):
    """A request failure with a status code and the message clients see.

    Args:
        code: `grpc.StatusCode` of the failure.
        message: str, the text sent to the client unchanged.
    """

    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def http_status(self):
        """int: the HTTP status TF Serving's REST API uses for `code`."""
        return _HTTP_STATUS.get(self.code, 500)

    @property
    def status_name(self):
        """str: the code's name as printed by `absl::Status::ToString` (e.g. "INVALID_ARGUMENT")."""
        return self.code.name

    def __repr__(self):
        return f"ServingError({self.code.name}, {self.message!r})"


def invalid_argument(message):
    """Returns a `ServingError` with code INVALID_ARGUMENT (HTTP 400)."""
    return ServingError(grpc.StatusCode.INVALID_ARGUMENT, message)


def not_found(message):
    """Returns a `ServingError` with code NOT_FOUND (HTTP 404)."""
    return ServingError(grpc.StatusCode.NOT_FOUND, message)


def failed_precondition(message):
    """Returns a `ServingError` with code FAILED_PRECONDITION (HTTP 400)."""
    return ServingError(grpc.StatusCode.FAILED_PRECONDITION, message)


def unimplemented(message):
    """Returns a `ServingError` with code UNIMPLEMENTED (HTTP 501)."""
    return ServingError(grpc.StatusCode.UNIMPLEMENTED, message)


def resource_exhausted(message):
    """Returns a `ServingError` with code RESOURCE_EXHAUSTED (HTTP 429)."""
    return ServingError(grpc.StatusCode.RESOURCE_EXHAUSTED, message)


def deadline_exceeded(message="Deadline Exceeded"):
    """Returns a `ServingError` with code DEADLINE_EXCEEDED (HTTP 504)."""
    return ServingError(grpc.StatusCode.DEADLINE_EXCEEDED, message)


def unavailable(message):
    """Returns a `ServingError` with code UNAVAILABLE (HTTP 503)."""
    return ServingError(grpc.StatusCode.UNAVAILABLE, message)


def internal(message):
    """Returns a `ServingError` with code INTERNAL (HTTP 500)."""
    return ServingError(grpc.StatusCode.INTERNAL, message)


def from_tf_error(error):
    """Converts an exception raised while running a TensorFlow function.

    `tf.errors.OpError` subclasses carry a canonical error code, which is kept;
    anything else becomes INTERNAL.

    Args:
        error: the exception.

    Returns:
        A `ServingError`.
    """
    import tensorflow as tf  # Local: keeps this module importable without TF.

    if isinstance(error, ServingError):
        return error
    if isinstance(error, tf.errors.OpError):
        # TensorFlow's canonical codes are gRPC's codes, number for number.
        return ServingError(
            _code_from_number(error.error_code), _strip_python_context(error.message)
        )
    return internal(f"{type(error).__name__}: {error}")


def _strip_python_context(message):
    """Drops what eager Python adds around a kernel's message (not part of TF Serving's)."""
    marker = "<stack traces unavailable>\n"
    if message.startswith("Graph execution error:") and marker in message:
        message = message.split(marker, 1)[1]
    return re.sub(r"\s*\[Op:[^\]]*\]$", "", message)


def _code_from_number(number):
    for code in grpc.StatusCode:
        if code.value[0] == number:
            return code
    return grpc.StatusCode.UNKNOWN
