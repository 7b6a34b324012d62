"""Trust levels 0-4 from what a person did (pure: plain facts in, a level and what is missing out).

Defaults follow Discourse's spirit: TL1 after reading a little for a few minutes, TL2 after
coming back on several days and taking part, TL3 for sustained contribution over the last
100 days, TL4 only by a moderator's hand.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class TrustFacts:
    minutes_since_sign_up: float
    days_visited: int
    items_read: int
    published_posts: int
    likes_given: int
    likes_received: int
    # Over the last 100 days, for TL3:
    recent_days_visited: int = 0
    recent_published_posts: int = 0
    recent_items_read: int = 0
    recent_rejected_posts: int = 0
    recent_upheld_flags_against: int = 0


@dataclass(frozen=True)
class Requirement:
    fact: str
    at_least: float | None = None
    at_most: float | None = None

    def met(self, facts: TrustFacts) -> bool:
        value = getattr(facts, self.fact)
        if self.at_least is not None and value < self.at_least:
            return False
        return not (self.at_most is not None and value > self.at_most)


def _defaults() -> dict[int, tuple[Requirement, ...]]:
    return {
        1: (
            Requirement("minutes_since_sign_up", at_least=10),
            Requirement("days_visited", at_least=1),
            Requirement("items_read", at_least=5),
        ),
        2: (
            Requirement("days_visited", at_least=15),
            Requirement("items_read", at_least=100),
            Requirement("published_posts", at_least=3),
            Requirement("likes_given", at_least=1),
            Requirement("likes_received", at_least=1),
        ),
        3: (
            Requirement("recent_days_visited", at_least=50),
            Requirement("recent_items_read", at_least=500),
            Requirement("recent_published_posts", at_least=10),
            Requirement("recent_rejected_posts", at_most=2),
            Requirement("recent_upheld_flags_against", at_most=0),
        ),
    }


@dataclass(frozen=True)
class TrustThresholds:
    levels: dict[int, tuple[Requirement, ...]] = field(default_factory=_defaults)

    @classmethod
    def from_settings(cls, stored: dict[str, dict[str, float]]) -> TrustThresholds:
        """``{"1": {"items_read": 3, ...}}`` overrides the at-least (or at-most) numbers."""
        levels = _defaults()
        for level_key, overrides in stored.items():
            level = int(level_key)
            if level not in levels:
                continue
            levels[level] = tuple(
                Requirement(
                    r.fact,
                    at_least=overrides.get(r.fact, r.at_least) if r.at_least is not None else None,
                    at_most=overrides.get(r.fact, r.at_most) if r.at_most is not None else None,
                )
                for r in levels[level]
            )
        return cls(levels=levels)


def earned_level(facts: TrustFacts, thresholds: TrustThresholds = TrustThresholds()) -> int:
    """The highest automatic level (0-3) whose requirements, and all below it, are met."""
    level = 0
    for candidate in sorted(thresholds.levels):
        if all(r.met(facts) for r in thresholds.levels[candidate]):
            level = candidate
        else:
            break
    return level


def missing_for(
    level: int, facts: TrustFacts, thresholds: TrustThresholds = TrustThresholds()
) -> list[Requirement]:
    """What still stands between these facts and ``level``."""
    return [r for r in thresholds.levels.get(level, ()) if not r.met(facts)]
