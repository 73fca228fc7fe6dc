"""Prometheus counters of the reward service: every non-OK item is counted."""

from __future__ import annotations

from prometheus_client import Counter

ITEMS = Counter("outrider_reward_items_total", "Items scored by the reward service", ["method", "code"])
ITEM_ERRORS = Counter(
    "outrider_reward_item_errors_total",
    "Items whose verifier or PRM failed (no reward was given)",
    ["method", "source", "code"],
)
PRM_STEPS = Counter("outrider_reward_prm_steps_total", "Steps scored by the process reward model")
