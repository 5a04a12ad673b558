"""The cascade step: check a cheaper tier's finished answer and decide whether to ask a stronger tier.

Runs only for non-streaming `model="auto"` requests with `router.cascade` configured. The stronger tier is the
strongest one in the route plan (device < edge < cloud, then price), so the hard policies still hold: a tier
they excluded (e.g. the cloud, for personal data) is not in the plan and is never escalated to. This module
decides (with the answer model of `routing/cascade.py`); `ChatService.complete` sends the request up, and the
request's trace reports both steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tierwise.gateway.decision import RoutePlan
from tierwise.gateway.state import GatewayState
from tierwise.protocol import ChatCompletionRequest
from tierwise.routing.answer_signals import AnswerConfidence

LOCATION_RANK = {"device": 0, "edge": 1, "cloud": 2}


@dataclass
class Escalation:
    """The check of one answer: P(good) against the threshold, and where the request goes up to (if anywhere)."""

    checked: str
    p_good: float
    threshold: float
    target: str | None
    reason: str
    error: str | None = None

    @property
    def result(self) -> str:
        if self.target is None:
            return "kept" if self.p_good >= self.threshold else "no_stronger_tier"
        return "escalation_failed" if self.error else "escalated"

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "checked": self.checked,
            "p_good": round(self.p_good, 4),
            "threshold": round(self.threshold, 4),
            "escalated_to": self.target,
            "reason": self.reason,
        }
        if self.error:
            out["error"] = self.error
        return out


def _strength(state: GatewayState, name: str) -> tuple[int, float]:
    tier = state.tiers[name]
    return LOCATION_RANK.get(tier.location, 0), tier.cost.input_per_mtok + tier.cost.output_per_mtok


def _answer_text(body: dict[str, Any]) -> str | None:
    choices = body.get("choices") or []
    if len(choices) != 1:
        return None  # n > 1: which answer would decide? not checked
    content = (choices[0].get("message") or {}).get("content")
    return content if isinstance(content, str) and content else None


def plan_escalation(
    state: GatewayState, chat: ChatCompletionRequest, plan: RoutePlan, served: str, body: dict[str, Any],
    *, confidence: AnswerConfidence | None = None,
) -> Escalation | None:
    """None when this answer is not checked (no cascade, pinned tier, tier not checked, no text answer).
    `confidence`: how sure the serving model was (its token logprobs, when the tier reports them): an answer
    the model itself doubted is escalated first."""
    check, config = state.cascade, state.settings.router.cascade
    if check is None or config is None or plan.pinned:
        return None
    checked = config.check if config.check is not None else [n for n, t in state.tiers.items() if t.location != "cloud"]
    answer = _answer_text(body)
    if served not in checked or answer is None:
        return None
    threshold = check.threshold if config.threshold is None else config.threshold
    doubtful, p_good = check.should_escalate(chat.last_user_text(), answer, threshold=threshold,
                                             confidence=confidence)
    if not doubtful:
        return Escalation(served, p_good, threshold, None, f"answer of {served!r} kept: P(good) {p_good:.2f}")
    stronger = [n for n in plan.order if _strength(state, n) > _strength(state, served)]
    if not stronger:
        why = f"answer of {served!r} doubtful (P(good) {p_good:.2f}) but no stronger tier is allowed"
        return Escalation(served, p_good, threshold, None, why)
    target = max(stronger, key=lambda n: _strength(state, n))
    why = f"answer of {served!r} doubtful (P(good) {p_good:.2f} < {threshold:.2f}): escalated to {target!r}"
    return Escalation(served, p_good, threshold, target, why)
