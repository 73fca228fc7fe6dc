"""Several PRMs served as one (reward-model ensembles against reward hacking).

Every member encodes and scores every item; an item's scores are the M × T values of
member × step, combined per step by the configured rule (mean, min, mean − k·std;
`outrider.learner.algos.reward_objectives`), and its disagreement is the members' std
per step, averaged over the steps. A member that raises fails the batch with
`MemberFailed` naming it (the reward core then scores the items one by one, so only the
items that member cannot score get an ERROR status); a member's non-finite or
wrong-length scores make that item ERROR, naming the member. A failing member is never
left out of the combination: a mean over the members that happened to answer would
change the reward's meaning item by item.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from outrider.learner.algos.reward_objectives import combine_ensemble, ensemble_disagreement
from outrider.proto.chat import Message
from outrider.services.reward.prm.segmentation import StepSpan


class MemberFailed(RuntimeError):
    """A member PRM raised while scoring; the message names the member."""


class PRMEnsemble:
    kind = "ensemble"

    def __init__(self, members: Sequence, combine: str, k: float):
        if len(members) < 1:
            raise ValueError("an ensemble needs at least one member")
        self.members, self.combine_rule, self.k = list(members), combine, k

    def member_name(self, index: int) -> str:
        return f"member {index} ({self.members[index].describe()})"

    def describe(self) -> str:
        rule = f"lower_bound k={self.k:g}" if self.combine_rule == "lower_bound" else self.combine_rule
        return f"ensemble[{rule}]({', '.join(m.describe() for m in self.members)})"

    def encode(self, messages: Sequence[Message], steps: Sequence[StepSpan]) -> tuple:
        return tuple(member.encode(messages, steps) for member in self.members)

    def num_tokens(self, encoded: tuple) -> int:
        return max(member.num_tokens(enc) for member, enc in zip(self.members, encoded, strict=True))

    def score(self, items: Sequence[tuple]) -> list[list[np.ndarray]]:
        """Every member's s_1..s_T of every item: per item, one array per member."""
        per_member = []
        for index, member in enumerate(self.members):
            try:
                per_member.append(member.score([enc[index] for enc in items]))
            except Exception as exc:  # noqa: BLE001 - re-raised naming the member
                raise MemberFailed(f"{self.member_name(index)}: {type(exc).__name__}: {exc}") from exc
        return [[np.asarray(scores[item], dtype=np.float64) for scores in per_member] for item in range(len(items))]

    def check(self, rows: Sequence[np.ndarray], steps: int) -> str | None:
        """Why an item's member scores cannot be combined (naming the member), or None."""
        for m, row in enumerate(rows):
            if len(row) != steps:
                return f"PRM {self.member_name(m)} scored {len(row)} steps of {steps}"
            if not np.all(np.isfinite(row)):
                return f"PRM {self.member_name(m)} returned non-finite scores {row.tolist()[:8]}"
        return None

    def combine(self, rows: Sequence[np.ndarray]) -> tuple[np.ndarray, float]:
        """s_t combined over the members, and the disagreement mean_t std_m s_{m,t}."""
        scores = torch.from_numpy(np.stack(rows))
        combined = combine_ensemble(scores, self.combine_rule, self.k).numpy()
        return combined, float(ensemble_disagreement(scores).mean())
