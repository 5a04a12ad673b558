"""Every exception class of tierwise. The gateway maps each once to an OpenAI-style error and status code.

Failures of a tier are types, not code strings: failover, health accounting and the final error the client gets
are decided by `isinstance` on these classes (`gateway/dispatch.py`)."""

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


class ClientClosed(TierwiseError):
    """The client went away before its answer was sent; its work was cancelled. 499 is nginx's "client closed
    request": nobody reads it, but access logs and metrics show what happened."""

    status = 499
    error_type = "invalid_request_error"
    code = "client_closed"


class RateLimited(TierwiseError):
    status = 429
    error_type = "rate_limit_error"


class UpstreamError(TierwiseError):
    """A tier answered with something unusable (invalid JSON, wrong schema, an error status)."""

    status = 502
    error_type = "upstream_error"


class NoTierAvailable(TierwiseError):
    """No tier could serve the request: all excluded, down, or failed before answering. `excluded`: each tier
    the policies ruled out, and why."""

    status = 503
    error_type = "service_unavailable"
    code = "no_tier_available"

    def __init__(
        self, message: str, *, excluded: dict[str, str] | None = None, retry_after_s: float | None = None
    ) -> None:
        super().__init__(message, retry_after_s=retry_after_s)
        self.excluded = dict(excluded or {})


class EmbeddingsUnavailable(TierwiseError):
    """The local embedding model (the `router` extra) is not installed."""

    status = 503
    error_type = "service_unavailable"
    code = "embeddings_unavailable"


class EmbeddingModelMissing(RuntimeError):
    """The local embedding model's files or code (the `router` extra) are missing; raised while loading it."""


# --- what a tier raises (tiers/base.py documents when) ------------------------------------------------------


class TierUnavailable(TierwiseError):
    """The tier failed before sending anything (refused, timed out, 5xx): another tier may serve instead."""

    status = 503
    error_type = "service_unavailable"
    code = "tier_unavailable"


class TierRequestFailed(TierUnavailable):
    """The tier answered 5xx to this request while its health probe passes: most likely the request broke it
    (llama.cpp's server answers 500 to what it cannot handle). Another tier may still serve it, but the failure
    does not count against this tier's health; if no tier serves it the client gets a 422."""

    status = 422
    error_type = "invalid_request_error"
    code = "upstream_request_failed"


class TierBusy(TierUnavailable):
    """The tier's admission queue is full (or a slot did not free up in time): another tier may serve; this is
    load, not a fault, so it does not count against the tier's health. Answered with 503 and Retry-After."""

    code = "tier_busy"


class TierRateLimited(TierUnavailable):
    """The tier answered 429: another tier may serve; if none does, the client gets 429 with its Retry-After."""

    status = 429
    error_type = "rate_limit_error"
    code = "upstream_rate_limited"


class TierStreamBroken(UpstreamError):
    """The tier failed after it had started answering; what was sent cannot be taken back."""

    code = "stream_broken"


class TierBadResponse(TierStreamBroken):
    """The server answered, but not in the OpenAI format (invalid JSON, missing `choices`, too large)."""

    code = "bad_upstream_response"


class TierRejected(TierwiseError):
    """The tier refused the request itself (an upstream 4xx): the client's request, not the tier, is at fault."""

    error_type = "invalid_request_error"
    code = "upstream_rejected"

    def __init__(self, message: str, *, status: int) -> None:
        super().__init__(message)
        self.status = status


class WorkerFailed(Exception):
    """The device tier's worker process never became ready (the model did not load, or the process died)."""


# --- the HTTP tiers' client (tiers/upstream.py), before the tier turns them into a TierwiseError -------------


class UpstreamTransportError(Exception):
    """The HTTP exchange with a tier's server failed (the client library's error, translated)."""


class UpstreamConnectFailed(UpstreamTransportError):
    """No connection, or it closed before anything came back: retrying cannot duplicate output."""


class UpstreamTimedOut(UpstreamTransportError):
    """Connecting, or waiting for the next bytes, took longer than the tier's timeouts allow."""


class UpstreamHTTPFailed(UpstreamTransportError):
    """Any other failure of the exchange (a malformed response, a body cut off)."""


# --- signals that stop work from inside a callback; caught where they are raised, never seen by a client ----------


class BodyTooLarge(Exception):
    """A request body grew past `gateway.max_body_bytes` while streaming in (gateway/limits.py answers 413)."""


class HeadTooLarge(Exception):
    """Raised inside an httptools parser callback to stop it at once (gateway/limited_protocol.py answers 431)."""


class GenerationCancelled(Exception):
    """Raised from inside llama.cpp's sampling loop to stop it: the parent cancelled, closed or went away."""


class TokenLimitReached(Exception):
    """The request's token limit was reached on a path where llama-cpp-python ignores `max_tokens`."""
