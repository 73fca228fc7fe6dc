"""`format`: does the response have the required shape? 1 when it does, else 0.

Checks (all configured ones must hold): a regular expression (anywhere, or the
whole response with `full_match`), and a final-answer form: `boxed` needs a
`\\boxed{...}`, `marker` an `Answer:`-style marker (or GSM8K's `####`), `any`
either of them — found by `outrider.envs.answers`, as the math verifier finds them.
"""

from __future__ import annotations

import re

from outrider.envs.answers import has_answer_marker, last_boxed
from outrider.services.reward.verifiers.base import Verdict, Verifier, VerifierInput


class FormatVerifier(Verifier):
    name = "format"

    def __init__(self, cfg):
        super().__init__(cfg)
        self.pattern = re.compile(cfg.pattern, re.DOTALL) if cfg.pattern is not None else None

    async def verify(self, item: VerifierInput) -> Verdict:
        text = item.response
        problems = []
        if self.pattern is not None:
            matched = self.pattern.fullmatch(text) if self.cfg.full_match else self.pattern.search(text)
            if matched is None:
                problems.append(f"does not {'fully ' if self.cfg.full_match else ''}match /{self.pattern.pattern}/")
        wanted = self.cfg.require_answer
        has_boxed, has_marker = last_boxed(text) is not None, has_answer_marker(text)
        if wanted == "boxed" and not has_boxed:
            problems.append("no \\boxed{...} answer")
        elif wanted == "marker" and not has_marker:
            problems.append("no 'Answer:' marker")
        elif wanted == "any" and not (has_boxed or has_marker):
            problems.append("no \\boxed{...} or 'Answer:' final answer")
        return Verdict(0.0, "; ".join(problems)) if problems else Verdict(1.0, "format ok")
