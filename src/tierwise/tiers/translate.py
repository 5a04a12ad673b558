"""OpenAI request → what a backend reads: the one place where parameters are renamed, mapped or dropped.

Backends speak dialects of the OpenAI API. llama.cpp's servers read `max_tokens` only (a `max_completion_tokens`
limit, what LangChain sends, is ignored and the answer runs on), answer 500 to a `developer` role, to a
`json_schema` response format and to an assistant turn without `content`. A `Dialect` names those differences
once; `http_payload` and `llama_cpp_arguments` apply them. Usage::

    payload = http_payload(request, DIALECTS["llama_cpp"], model="smollm2")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tierwise.errors import ConfigError

if TYPE_CHECKING:
    from tierwise.protocol import ChatCompletionRequest


@dataclass(frozen=True)
class Dialect:
    """How one kind of OpenAI-compatible server differs from the OpenAI API.

    - `token_limit_field`: the one field the output limit is sent in (the other is dropped).
    - `developer_role`: the server knows the `developer` role; else it is sent as `system`.
    - `json_schema`: `native`, or `as_json_object` (`{"type": "json_object", "schema": ...}`, llama.cpp's form).
    - `null_content`: the server accepts `content: null` (an assistant turn that only calls tools); else "".
    - `stream_usage`: the server honours `stream_options.include_usage` (else the gateway estimates usage).
    """

    name: str
    token_limit_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    developer_role: bool = True
    json_schema: Literal["native", "as_json_object"] = "native"
    null_content: bool = True
    stream_usage: bool = True


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        # OpenAI's own API: reasoning models refuse `max_tokens`, every model reads `max_completion_tokens`.
        Dialect("openai", token_limit_field="max_completion_tokens"),
        # vLLM and SGLang read both limits; `max_tokens` is the one every version knows.
        Dialect("vllm"),
        # llama-cpp-python's server and llama.cpp's llama-server.
        Dialect("llama_cpp", developer_role=False, json_schema="as_json_object", null_content=False,
                stream_usage=False),
    )
}


def dialect_named(name: str) -> Dialect:
    try:
        return DIALECTS[name]
    except KeyError:
        raise ConfigError(f"unknown dialect {name!r}; known: {', '.join(sorted(DIALECTS))}") from None


def http_payload(request: ChatCompletionRequest, dialect: Dialect, *, model: str) -> dict[str, Any]:
    """The JSON body for `POST /chat/completions` on a server of `dialect`. Fields the gateway does not know are
    passed through unchanged; fields the client left out stay out (so `content: null` survives, unlike with
    `exclude_none`)."""
    payload = request.model_dump(exclude_unset=True)
    payload["model"] = model
    payload["messages"] = [_message(m, dialect) for m in payload["messages"]]
    payload.pop("max_tokens", None)
    payload.pop("max_completion_tokens", None)
    if request.token_limit is not None:
        payload[dialect.token_limit_field] = request.token_limit
    if "response_format" in payload:
        payload["response_format"] = _response_format(payload["response_format"], dialect)
    if request.stream:
        payload["stream"] = True
        # Ask for usage in the last chunk: the gateway counts tokens and cost from it.
        payload["stream_options"] = {**payload.get("stream_options", {}), "include_usage": True}
    else:
        # The client waits for the whole answer anyway: one JSON body is cheaper to carry than an event stream,
        # and it arrives as a single chunk (a failure is then always "before the first chunk").
        payload["stream"] = False
        payload.pop("stream_options", None)
    return payload


# What `Llama.create_chat_completion` accepts beyond messages, under the same name as in the OpenAI API.
_LLAMA_CPP_PASSED = ("stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "tools", "tool_choice",
                     "functions", "function_call")


def llama_cpp_arguments(request: ChatCompletionRequest) -> dict[str, Any]:
    """Keyword arguments for llama-cpp-python's `Llama.create_chat_completion` (always streamed)."""
    body = request.model_dump(exclude_unset=True)
    dialect = DIALECTS["llama_cpp"]
    arguments: dict[str, Any] = {
        "messages": [_message(m, dialect) for m in body["messages"]],
        "max_tokens": request.token_limit,
        # OpenAI's defaults, not llama-cpp-python's (0.2 / 0.95), so tiers agree on what a request means.
        "temperature": 1.0 if request.temperature is None else request.temperature,
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "logprobs": bool(request.logprobs),
        "top_logprobs": request.top_logprobs if request.logprobs else None,
        "stream": True,
    }
    arguments.update({key: body[key] for key in _LLAMA_CPP_PASSED if body.get(key) is not None})
    if "stop" in arguments:
        arguments["stop"] = request.stop_list
    if body.get("response_format") is not None:
        arguments["response_format"] = _response_format(body["response_format"], dialect)
    return arguments


def _message(message: dict[str, Any], dialect: Dialect) -> dict[str, Any]:
    if message.get("role") == "developer" and not dialect.developer_role:
        message = {**message, "role": "system"}
    if message.get("content") is None and not dialect.null_content:
        message = {**message, "content": ""}
    return message


def _response_format(value: Any, dialect: Dialect) -> Any:
    if not isinstance(value, dict) or value.get("type") != "json_schema" or dialect.json_schema == "native":
        return value
    spec = value.get("json_schema") or {}
    schema = spec.get("schema") if isinstance(spec, dict) else None
    return {"type": "json_object", **({"schema": schema} if isinstance(schema, dict) else {})}
