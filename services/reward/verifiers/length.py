"""`length`: DAPO's soft overlong punishment (Yu et al. 2025, "DAPO", eq. 13).

With L = the response length, L_max = `max_length` and L_cache = `buffer`:

    R(L) = 0                               if L <= L_max − L_cache
    R(L) = ((L_max − L_cache) − L) / L_cache   if L_max − L_cache < L <= L_max
    R(L) = −1                              if L > L_max

so the penalty ramps linearly from 0 to −1 over the last L_cache units instead
of a cliff at the limit. Give it a positive weight: it adds a value in [−1, 0].
The formula is computed by the learner library's
`outrider.learner.algos.off_policy.overlong_penalty` (penalty 1), its one
implementation; this verifier only measures L.
"""

from __future__ import annotations

import torch

from outrider.learner.algos.off_policy import OverlongParams, overlong_penalty
from outrider.services.reward.verifiers.base import InvalidItem, Verdict, Verifier, VerifierInput


class LengthVerifier(Verifier):
    name = "length"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.params = OverlongParams(max_length=cfg.max_length, cache_length=cfg.buffer, penalty=1.0)

    async def verify(self, item: VerifierInput) -> Verdict:
        if self.cfg.unit == "tokens":
            if item.response_tokens == 0 and item.response:
                raise InvalidItem("response_tokens is 0 for a non-empty response; the length verifier counts tokens")
            length = item.response_tokens
        else:
            length = len(item.response)
        value = overlong_penalty(torch.tensor([length]), self.params).item()
        return Verdict(value, f"{length} {self.cfg.unit} (limit {self.cfg.max_length}, soft from {self.cfg.max_length - self.cfg.buffer})")
