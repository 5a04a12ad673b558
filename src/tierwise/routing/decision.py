"""The one place the threshold is applied: the cheapest allowed tier within `tolerance` of the best."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from tierwise.routing.router import TierView


@dataclass(frozen=True)
class TierChoice:
    """The chosen tier, the rest in failover order (cheapest first), and why."""

    tier: str
    fallbacks: list[str]
    reasons: list[str]


def choose_tier(
    tiers: Sequence[TierView], quality: Mapping[str, float], cost: Mapping[str, float], *, tolerance: float
) -> TierChoice:
    """Among `tiers` (all allowed), the cheapest whose predicted quality ≥ best − tolerance.

    Ties on cost keep the given order. Fallbacks are the other tiers, cheapest first.
    """
    if not tiers:
        raise ValueError("no tier to choose from")
    best = max(tiers, key=lambda t: quality[t.name])
    floor = quality[best.name] - tolerance
    ranked = sorted(enumerate(tiers), key=lambda it: (cost[it[1].name], it[1].price_per_mtok, it[0]))
    chosen = next(t for _, t in ranked if quality[t.name] >= floor)
    reasons = [
        f"best predicted quality among allowed tiers: {best.name} ({quality[best.name]:.3f})",
        f"tolerance {tolerance:.3f}: tiers at or above {floor:.3f} qualify",
    ]
    cheaper_skipped = [t.name for _, t in ranked if cost[t.name] < cost[chosen.name]]
    if chosen.name == best.name and cheaper_skipped:
        reasons.append(f"cheaper tiers {', '.join(cheaper_skipped)} are predicted more than the tolerance worse")
    elif chosen.name != best.name:
        reasons.append(
            f"{chosen.name} is the cheapest qualifying tier "
            f"(predicted {quality[chosen.name]:.3f}, {cost[chosen.name]:.3g} USD)"
        )
    else:
        reasons.append(f"{chosen.name} is both the best and the cheapest allowed tier")
    return TierChoice(chosen.name, [t.name for _, t in ranked if t.name != chosen.name], reasons)
