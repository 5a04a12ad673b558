"""OpenAI request → what a backend reads: the one place where parameters are renamed, mapped or dropped.

Backends speak dialects of the OpenAI API. llama.cpp's servers read `max_tokens` only (a `max_completion_tokens`
limit, what LangChain sends, is ignored and the answer runs on), answer 500 to a `developer` role, to a
`json_schema` response format and to an assistant turn without `content`. A `Dialect` names those differences
once; `http_payload` and `llama_cpp_arguments` apply them.

llama-cpp-python in-process knows less again: chat templates print a list of text parts as it is, and its
`chatml-function-calling` handler drops `tool` turns, defaults `tool_choice` to "none" and cannot force "one of
several" tools. `llama_cpp_arguments` fills those gaps too, so the device tier sends what it gets. Usage::

    payload = http_payload(request, DIALECTS["llama_cpp"], model="smollm2")
    arguments = llama_cpp_arguments(request, tool_handler="chatml-function-calling", tier="device")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from tierwise.errors import ConfigError
from tierwise.tiers.base import TierRejected

if TYPE_CHECKING:
    from tierwise.protocol import ChatCompletionRequest, TextCompletionRequest


@dataclass(frozen=True)
class Dialect:
    """How one kind of OpenAI-compatible server differs from the OpenAI API.

    - `token_limit_field`: the one field the output limit is sent in (the other is dropped).
    - `developer_role`: the server knows the `developer` role; else it is sent as `system`.
    - `json_schema`: `native`, or `as_json_object` (`{"type": "json_object", "schema": ...}`, llama.cpp's form).
    - `null_content`: the server accepts `content: null` (an assistant turn that only calls tools); else "".
    - `stream_usage`: the server honours `stream_options.include_usage` (else the gateway estimates usage).
    - `request_id_uuid_only`: forward the client's `x-request-id` only when it is a UUID.
    - `reasoning`: how `reasoning_effort` and `thinking_token_budget` are sent (`_reasoning_fields`): `effort`
      (OpenAI: the effort as is, no budget field exists), `template` (vLLM and SGLang: the effort as is, the
      budget as vLLM's `thinking_token_budget` and as the `thinking_budget` chat-template variable that SGLang
      and Qwen3's template read, `enable_thinking: false` for effort "none"), or `none` (dropped).
    """

    name: str
    token_limit_field: Literal["max_tokens", "max_completion_tokens"] = "max_tokens"
    developer_role: bool = True
    json_schema: Literal["native", "as_json_object"] = "native"
    null_content: bool = True
    stream_usage: bool = True
    request_id_uuid_only: bool = False  # the server refuses (400) an `x-request-id` that is not a UUID
    reasoning: Literal["effort", "template", "none"] = "template"


DIALECTS: dict[str, Dialect] = {
    d.name: d
    for d in (
        # OpenAI's own API: reasoning models refuse `max_tokens`, every model reads `max_completion_tokens`.
        Dialect("openai", token_limit_field="max_completion_tokens", reasoning="effort"),
        # vLLM and SGLang read both limits; `max_tokens` is the one every version knows.
        Dialect("vllm"),
        # llama-cpp-python's server and llama.cpp's llama-server.
        # (its starlette-context plugin answers 400 to an x-request-id that is not a UUID)
        Dialect("llama_cpp", developer_role=False, json_schema="as_json_object", null_content=False,
                stream_usage=False, request_id_uuid_only=True, reasoning="none"),
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
    payload = dict(request.sent_fields)  # a copy: the request is sent on to the next tier on failover
    payload["model"] = model
    payload["messages"] = [_message(m, dialect) for m in payload["messages"]]
    payload.pop("max_tokens", None)
    payload.pop("max_completion_tokens", None)
    if request.token_limit is not None:
        payload[dialect.token_limit_field] = request.token_limit
    if "response_format" in payload:
        payload["response_format"] = _response_format(payload["response_format"], dialect)
    _reasoning_fields(payload, dialect)
    _stream_fields(payload, stream=request.stream)
    return payload


def text_payload(request: TextCompletionRequest, dialect: Dialect, *, model: str) -> dict[str, Any]:
    """The JSON body for `POST /completions`: the prompt as one string, `max_tokens` (every server reads it on
    this endpoint), unknown fields passed through; `echo` is left to the gateway, which does it for every tier."""
    payload = request.model_dump(exclude_unset=True, exclude={"echo", "suffix", "best_of"})
    payload["model"] = model
    payload["prompt"] = request.text
    payload["max_tokens"] = request.max_tokens
    _stream_fields(payload, stream=request.stream)
    return payload


def _reasoning_fields(payload: dict[str, Any], dialect: Dialect) -> None:
    effort = payload.pop("reasoning_effort", None)
    budget = payload.pop("thinking_token_budget", None)
    if dialect.reasoning == "none":
        return
    if effort is not None:
        payload["reasoning_effort"] = effort
    if dialect.reasoning == "effort":
        return
    template = dict(payload.get("chat_template_kwargs") or {})
    if effort == "none":
        template.setdefault("enable_thinking", False)
    if budget is not None:
        payload["thinking_token_budget"] = budget
        template.setdefault("thinking_budget", budget)
    if template:
        payload["chat_template_kwargs"] = template


def _stream_fields(payload: dict[str, Any], *, stream: bool) -> None:
    if stream:
        payload["stream"] = True
        # Ask for usage in the last chunk: the gateway counts tokens and cost from it.
        payload["stream_options"] = {**payload.get("stream_options", {}), "include_usage": True}
    else:
        # The client waits for the whole answer anyway: one JSON body is cheaper to carry than an event stream,
        # and it arrives as a single chunk (a failure is then always "before the first chunk").
        payload["stream"] = False
        payload.pop("stream_options", None)


# What `Llama.create_chat_completion` accepts beyond messages, under the same name as in the OpenAI API.
_LLAMA_CPP_PASSED = ("stop", "seed", "presence_penalty", "frequency_penalty", "logit_bias", "tools", "tool_choice",
                     "functions", "function_call")


def llama_cpp_arguments(
    request: ChatCompletionRequest, *, tool_handler: str | None = None, tier: str = "llama_cpp"
) -> dict[str, Any]:
    """Keyword arguments for llama-cpp-python's `Llama.create_chat_completion` (always streamed), or, with
    `tool_handler` and tools in use, for that chat handler (`_tool_arguments`). A request that does not use tools
    (none offered, or tool_choice "none") is sent without them: the model's own template, no tools. Raises
    `TierRejected` (400, naming `tier`) for a tool_choice the handler cannot honour."""
    body = request.sent_fields  # only read here
    dialect = DIALECTS["llama_cpp"]
    arguments: dict[str, Any] = {
        "messages": [_text_content(_message(m, dialect)) for m in body["messages"]],
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
    if not request.uses_tools:
        for key in ("tools", "tool_choice", "functions", "function_call"):
            arguments.pop(key, None)
        return arguments
    if tool_handler is None:
        return arguments  # the config claims the model's own template renders tools
    return _tool_arguments(arguments, tier=tier)


# What `Llama.create_completion` accepts under the OpenAI name, beyond the prompt and the sampling defaults.
_LLAMA_CPP_TEXT_PASSED = ("seed", "presence_penalty", "frequency_penalty", "logprobs")


def llama_cpp_text_arguments(request: TextCompletionRequest) -> dict[str, Any]:
    """Keyword arguments for llama-cpp-python's `Llama.create_completion` on the raw prompt (always streamed)."""
    body = request.model_dump(exclude_unset=True)
    arguments: dict[str, Any] = {
        "prompt": request.text,
        "max_tokens": request.max_tokens,
        "temperature": 1.0 if request.temperature is None else request.temperature,  # OpenAI's defaults, as chat
        "top_p": 1.0 if request.top_p is None else request.top_p,
        "stop": [request.stop] if isinstance(request.stop, str) else list(request.stop or []),
        "stream": True,
    }
    arguments.update({key: body[key] for key in _LLAMA_CPP_TEXT_PASSED if body.get(key) is not None})
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


def _text_content(message: dict[str, Any]) -> dict[str, Any]:
    """A list of text parts as one string: chat templates print `content` as it is, a list included."""
    content = message.get("content")
    if isinstance(content, list):
        texts = [str(p["text"]) for p in content if isinstance(p, dict) and p.get("text") is not None]
        return {**message, "content": "\n".join(texts)}
    return message


def _tool_arguments(arguments: dict[str, Any], *, tier: str) -> dict[str, Any]:
    """Arguments for llama-cpp-python's `chatml-function-calling` handler, which knows less than the OpenAI API."""
    arguments = dict(arguments)
    if functions := arguments.pop("functions", None):  # the legacy form, as tools
        arguments.setdefault("tools", [{"type": "function", "function": f} for f in functions])
        call = arguments.pop("function_call", None)
        if call is not None and "tool_choice" not in arguments:
            arguments["tool_choice"] = call if isinstance(call, str) else {"type": "function", "function": call}
    names = [t.get("function", {}).get("name") for t in arguments["tools"]]
    choice = arguments.get("tool_choice") or "auto"  # OpenAI's default when tools are offered (the handler's: none)
    if choice == "required":  # the handler cannot force "one of several"; with one tool, it is that tool
        if len(names) != 1:
            raise TierRejected(f"tier {tier!r} cannot honour tool_choice 'required' with {len(names)} tools; "
                               "name the tool to call in tool_choice", status=400)
        choice = {"type": "function", "function": {"name": names[0]}}
    if isinstance(choice, dict) and (choice.get("function") or {}).get("name") not in names:
        raise TierRejected(f"tool_choice names a function that is not among the tools ({names})", status=400)
    if not isinstance(choice, dict) and choice != "auto":
        raise TierRejected(f"unknown tool_choice {choice!r}", status=400)
    messages = _tool_results_as_user_turns(arguments["messages"])
    if not any(m.get("role") == "system" for m in messages):
        messages.insert(0, {"role": "system", "content": ""})  # the handler lists the tools in the system turn
    return {**arguments, "messages": messages, "tool_choice": choice}


def _tool_results_as_user_turns(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The handler's template drops `tool` turns; as user turns the model still sees each result."""
    names: dict[str, str] = {}
    out = []
    for message in messages:
        for call in message.get("tool_calls") or []:
            names[call.get("id", "")] = call.get("function", {}).get("name", "")
        if message.get("role") in {"tool", "function"}:
            name = message.get("name") or names.get(message.get("tool_call_id", ""), "") or "the tool"
            message = {"role": "user", "content": f"Result of {name}: {message.get('content') or ''}"}
        out.append(message)
    return out
