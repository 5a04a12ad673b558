"""A request body → a validated wire model, with every client mistake a 400 that names what is wrong.

Python's JSON parser accepts what JSON does not (NaN, Infinity) and what is not text (a lone surrogate escape):
neither could be sent on to a backend, so both are the client's error here rather than a tier failure later.
Usage: `chat = await parse_body(request, ChatCompletionRequest)`.
"""

from __future__ import annotations

import json
import re
from typing import Any, TypeVar

from fastapi import Request
from pydantic import BaseModel, ValidationError

from tierwise.errors import InvalidRequest
from tierwise.gateway.errors import invalid_request_from

Model = TypeVar("Model", bound=BaseModel)
_SURROGATE_ESCAPE = re.compile(rb"\\[uU][dD][89a-fA-F]")


async def parse_body(request: Request, model: type[Model]) -> Model:
    """The body as `model`; `InvalidRequest` (400) for an empty, malformed or invalid one."""
    body = await request.body()
    if not body.strip():
        raise InvalidRequest("the request body is empty; expected a JSON object")
    try:
        data = json.loads(body, parse_constant=_no_constants)
    except UnicodeDecodeError:
        raise InvalidRequest("the request body is not valid UTF-8") from None
    except ValueError as err:
        raise InvalidRequest(f"the request body is not valid JSON: {err}") from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply") from None
    if not isinstance(data, dict):
        raise InvalidRequest("the request body must be a JSON object")
    if _SURROGATE_ESCAPE.search(body) and _has_lone_surrogate(data):
        raise InvalidRequest("the request body has a \\u escape that is not a valid character (a lone surrogate)")
    try:
        return model.model_validate(data)
    except ValidationError as err:
        raise invalid_request_from(err) from None
    except RecursionError:
        raise InvalidRequest("the request body is nested too deeply") from None


def _no_constants(name: str) -> Any:
    raise InvalidRequest(f"the request body is not valid JSON: {name} is not a JSON value")


def _has_lone_surrogate(data: Any) -> bool:
    try:
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return True
    except (ValueError, RecursionError):
        return False  # other problems are caught where they matter
    return False
