"""One routed request as the decision log stores it: `DecisionRecord`, and the device tier's `AnswerConfidence`.

The gateway fills a record once the answer is served and hands it to `DecisionLog.append`. Usage::

    DecisionRecord(request_id="req-1", time=time.time(), key_hash=log.hash_key(api_key), tier="device",
                   model="Phi-3-mini", reasons=decision.reasons, allowed=["device", "edge"],
                   predicted_quality=decision.predicted_quality, router="learned", router_version="3f2a…",
                   latency_ms=412.0, prompt_tokens=30, completion_tokens=120, cost_usd=0.0)
"""

from __future__ import annotations

from dataclasses import dataclass, field

from tierwise.routing.answer_signals import AnswerConfidence


@dataclass(frozen=True)
class DecisionRecord:
    """What was decided for one request, what it cost, and how sure the serving model was.

    `key_hash` is the HMAC of the API key under the log's own salt (`DecisionLog.hash_key`), never the key.
    `device_only` says the personal-data policy kept this request on the device: its text is then kept only
    by a log that itself lives on the device. `prompt` / `answer` are offered by the caller; the log decides
    whether to keep them (`DecisionLogSettings.keep_text`, `location`).
    `cascade` is None when no check ran, else "kept" or "escalated"; `escalated_to` names the tier that then
    answered; `cascade_p_good` is the check's P(answer good).
    """

    request_id: str
    time: float  # Unix seconds
    tier: str  # the tier that served the answer
    model: str  # that tier's model, as answers name it (the outcome column labels are written for)
    router: str
    key_hash: str | None = None
    router_version: str | None = None
    reasons: list[str] = field(default_factory=list)
    allowed: list[str] = field(default_factory=list)
    excluded: dict[str, str] = field(default_factory=dict)
    predicted_quality: dict[str, float] | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost_usd: float | None = None
    cascade: str | None = None
    cascade_p_good: float | None = None
    escalated_to: str | None = None
    confidence: AnswerConfidence | None = None
    device_only: bool = False
    status: str = "ok"
    prompt: str | None = None
    answer: str | None = None
