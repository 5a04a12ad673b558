"""The learned router: predicted quality per allowed tier → the cheapest tier within the calibrated tolerance.

Usage::

    router = LearnedRouter.from_path("router.json")            # the gateway: ROUTERS["learned"](settings.router)
    decision = router.decide(RouteRequest(prompt=p, conversation=p), tier_views)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tierwise.costs import DEFAULT_OUTPUT_TOKENS, cost_usd, estimated_tokens
from tierwise.errors import ConfigError, NoTierAvailable
from tierwise.routing.calibrate import cloud_share, tolerance_for_share
from tierwise.routing.decision import choose_tier
from tierwise.routing.embed import EmbeddingCache
from tierwise.routing.features import Featurizer
from tierwise.routing.predictors import Predictor, predictor_from_state
from tierwise.routing.router import Decision, Router, RouteRequest, TierView
from tierwise.routing.router_file import RouterFile, TierSpec
from tierwise.routing.settings import RouterSettings


class LearnedRouter(Router):
    """Routes with a trained router file; considers only the tiers it is given (the policies' allowed set).

    A tier is matched to the file's tiers by name, else by location; a tier the file does not know gets
    predicted quality 0 (it serves only if nothing known is allowed), and the reasons say so.
    """

    name = "learned"

    def __init__(
        self,
        file: RouterFile,
        *,
        target_cloud_share: float | None = None,
        cache_dir: str | Path | None = None,
    ) -> None:
        self.file = file
        self.featurizer = Featurizer(file.featurizer, cache=EmbeddingCache(cache_dir))
        self.predictor: Predictor = predictor_from_state(file.predictor, file.predictor_arrays)
        self.tolerance = file.tolerance
        self.target_cloud_share = file.target_cloud_share
        if target_cloud_share is not None and target_cloud_share != file.target_cloud_share:
            # re-calibrate from the held-out margins kept in the file: no retraining needed
            self.tolerance = tolerance_for_share(file.heldout_margins, target_cloud_share)
            self.target_cloud_share = target_cloud_share
        self.heldout_cloud_share = cloud_share(file.heldout_margins, self.tolerance)

    @classmethod
    def from_path(
        cls, path: str | Path, *, target_cloud_share: float | None = None, cache_dir: str | Path | None = None
    ) -> LearnedRouter:
        """Load `router.json` (and its npz) and build the router."""
        return cls(RouterFile.load(path), target_cloud_share=target_cloud_share, cache_dir=cache_dir)

    @classmethod
    def from_settings(cls, settings: RouterSettings) -> LearnedRouter:
        """The router `router:` configures; a missing file is a ConfigError (at load, before serving)."""
        if settings.model is None:
            raise ConfigError("router.name 'learned' needs router.model (train a router file with `tierwise train`)")
        if not settings.model.is_file():
            raise ConfigError(f"router.model: {settings.model} does not exist (train one with `tierwise train`)")
        return cls.from_path(
            settings.model, target_cloud_share=settings.target_cloud_share, cache_dir=settings.embedding_cache_dir
        )

    def predict_quality(self, texts: list[str]) -> np.ndarray:
        """Predicted P(good answer), shape (len(texts), number of trained tiers), in the file's tier order."""
        return self.predictor.predict(self.featurizer.transform(texts))

    def _spec_for(self, tier: TierView) -> TierSpec | None:
        by_name = {s.name: s for s in self.file.tiers}
        if tier.name in by_name:
            return by_name[tier.name]
        return next((s for s in self.file.tiers if s.location == tier.location), None)

    def decide(self, request: RouteRequest, tiers: Sequence[TierView]) -> Decision:
        if not tiers:
            raise NoTierAvailable("no tier is allowed for this request", excluded={})
        q_row = self.predict_quality([request.prompt])[0]
        index = {s.name: i for i, s in enumerate(self.file.tiers)}
        input_tokens = estimated_tokens(request.conversation or request.prompt)
        quality: dict[str, float] = {}
        cost: dict[str, float] = {}
        notes: list[str] = []
        for t in tiers:
            spec = self._spec_for(t)
            out_tokens = spec.expected_output_tokens if spec else float(DEFAULT_OUTPUT_TOKENS)
            if request.max_tokens is not None:
                out_tokens = min(out_tokens, float(request.max_tokens))
            cost[t.name] = cost_usd(t, input_tokens, out_tokens)
            if spec is None:
                quality[t.name] = 0.0
                notes.append(f"no outcome data for tier {t.name}: predicted quality taken as 0")
            else:
                quality[t.name] = float(q_row[index[spec.name]])
        choice = choose_tier(tiers, quality, cost, tolerance=self.tolerance)
        reasons = [
            *choice.reasons,
            f"tolerance calibrated for {self.target_cloud_share:.0%} cloud calls "
            f"({self.heldout_cloud_share:.1%} on held-out data)",
            *notes,
        ]
        return Decision(
            tier=choice.tier,
            fallbacks=choice.fallbacks,
            reasons=reasons,
            predicted_quality=quality,
            expected_cost_usd=cost,
            router=self.name,
        )


