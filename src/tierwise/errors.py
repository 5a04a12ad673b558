"""The exception hierarchy. The gateway maps each class once to an OpenAI-style error and status code."""

from __future__ import annotations


class TierwiseError(Exception):
    """Base class. `status`, `error_type` and `code` shape the OpenAI-style error body."""

    status: int = 500
    error_type: str = "server_error"
    code: str | None = None
    retry_after_s: float | None = None  # sent as Retry-After: when trying again may succeed

    def __init__(
        self, message: str, *, param: str | None = None, code: str | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if retry_after_s is not None:
            self.retry_after_s = retry_after_s


class ConfigError(TierwiseError):
    """The configuration is invalid: raised at load, before anything serves."""


class InvalidRequest(TierwiseError):
    status = 400
    error_type = "invalid_request_error"


class AuthenticationFailed(TierwiseError):
    status = 401
    error_type = "authentication_error"
    code = "invalid_api_key"


class PolicyRefused(TierwiseError):
    """A hard policy forbids the tier the client asked for (e.g. personal data to the cloud)."""

    status = 403
    error_type = "permission_error"
    code = "policy_refused"


class ModelNotFound(TierwiseError):
    status = 404
    error_type = "invalid_request_error"
    code = "model_not_found"


class PayloadTooLarge(TierwiseError):
    status = 413
    error_type = "invalid_request_error"
    code = "request_too_large"


class RateLimited(TierwiseError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamError(TierwiseError):
    """A tier answered with something unusable (invalid JSON, wrong schema, an error status)."""

    status = 502
    error_type = "upstream_error"


class NoTierAvailable(TierwiseError):
    """No tier could serve the request: all excluded, down, or failed before answering."""

    status = 503
    error_type = "service_unavailable"
    code = "no_tier_available"


class EmbeddingsUnavailable(TierwiseError):
    """The local embedding model (the `router` extra) is not installed."""

    status = 503
    error_type = "service_unavailable"
    code = "embeddings_unavailable"
