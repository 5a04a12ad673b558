"""Every error leaves the gateway as OpenAI-style JSON with a fitting status, mapped here once."""

from __future__ import annotations

import logging
import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from tierwise.errors import InvalidRequest, TierwiseError
from tierwise.protocol import error_body

log = logging.getLogger("tierwise.gateway")

_HTTP_ERROR_TYPES = {401: "authentication_error", 404: "not_found_error", 405: "invalid_request_error"}


def error_response(err: TierwiseError, *, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse(
        error_body(err.message, error_type=err.error_type, code=err.code, param=err.param),
        status_code=err.status,
        headers=headers,
    )


def invalid_request_from(err: ValidationError) -> InvalidRequest:
    """The first validation problem, phrased for a client, with the offending field as `param`."""
    first = err.errors()[0]
    param = ".".join(str(p) for p in first["loc"])
    extra = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return InvalidRequest(f"{param}: {first['msg']}{extra}", param=param or None)


def install_error_handlers(app: FastAPI) -> None:
    def count(status: int) -> None:
        metrics = getattr(app.state, "metrics", None)
        if metrics is not None:
            metrics.http_errors.labels(str(status)).inc()

    async def on_tierwise_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, TierwiseError)
        count(err.status)
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else {}
        if err.retry_after_s is not None:
            headers["Retry-After"] = str(max(1, math.ceil(err.retry_after_s)))
        return error_response(err, headers=headers or None)

    async def on_validation_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, RequestValidationError)
        count(400)
        first: dict[str, Any] = err.errors()[0] if err.errors() else {"loc": (), "msg": "invalid request"}
        param = ".".join(str(p) for p in first["loc"][1:]) or None
        return JSONResponse(
            error_body(f"{param}: {first['msg']}", error_type="invalid_request_error", param=param), 400
        )

    async def on_http_error(request: Request, err: Exception) -> JSONResponse:
        assert isinstance(err, StarletteHTTPException)
        count(err.status_code)
        error_type = _HTTP_ERROR_TYPES.get(err.status_code, "invalid_request_error")
        return JSONResponse(
            error_body(str(err.detail), error_type=error_type), err.status_code, headers=err.headers
        )

    async def on_unexpected(request: Request, err: Exception) -> JSONResponse:
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        count(500)
        return JSONResponse(error_body("internal error in tierwise", error_type="server_error"), 500)

    app.add_exception_handler(TierwiseError, on_tierwise_error)
    app.add_exception_handler(RequestValidationError, on_validation_error)
    app.add_exception_handler(StarletteHTTPException, on_http_error)
    app.add_exception_handler(Exception, on_unexpected)
