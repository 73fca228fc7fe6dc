"""Outcome verifiers: one signature (`Verifier.verify(VerifierInput) -> Verdict`), one registry."""

from __future__ import annotations

from outrider.services.reward.verifiers.base import InvalidItem, Verdict, Verifier, VerifierError, VerifierInput

VERIFIER_MODULES: dict[str, str] = {
    "math": "outrider.services.reward.verifiers.math:MathVerifier",
    "code": "outrider.services.reward.verifiers.code:CodeVerifier",
    "format": "outrider.services.reward.verifiers.format:FormatVerifier",
    "length": "outrider.services.reward.verifiers.length:LengthVerifier",
}
"""Registry: verifier name -> class. The code verifier imports the sandbox only when used."""


def verifier_class(name: str) -> type[Verifier]:
    import importlib

    if name not in VERIFIER_MODULES:
        raise KeyError(f"unknown verifier {name!r}; valid: {', '.join(VERIFIER_MODULES)}")
    module, _, attr = VERIFIER_MODULES[name].partition(":")
    return getattr(importlib.import_module(module), attr)


def build_verifier(cfg) -> Verifier:
    """A verifier from its config (`cfg.type` names it)."""
    return verifier_class(cfg.type)(cfg)


__all__ = ["InvalidItem", "VERIFIER_MODULES", "Verdict", "Verifier", "VerifierError", "VerifierInput", "build_verifier", "verifier_class"]
