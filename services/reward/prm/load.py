"""Build the configured PRM (the model is resolved like the policy's: built-in name or HF folder)."""

from __future__ import annotations

from outrider.config.reward import EnsemblePRMConfig, LMJudgePRMConfig, ScalarHeadPRMConfig


def load_prm(cfg: ScalarHeadPRMConfig | LMJudgePRMConfig | EnsemblePRMConfig):
    """A ScalarHeadPRM, LMJudgePRM or PRMEnsemble; raises OSError naming the model when one
    cannot be loaded."""
    if isinstance(cfg, EnsemblePRMConfig):
        from outrider.services.reward.prm.ensemble import PRMEnsemble

        members = []
        for index, member in enumerate(cfg.members):
            try:
                members.append(load_prm(member))
            except OSError as exc:
                raise OSError(f"members[{index}]: {exc}") from exc
        return PRMEnsemble(members, cfg.combine, cfg.k)
    from outrider.models import ModelNotFound, resolve_model

    try:
        path = resolve_model(cfg.model)
    except ModelNotFound as exc:
        raise OSError(f"prm.model: {exc}") from None
    if isinstance(cfg, ScalarHeadPRMConfig):
        from outrider.services.reward.prm.scalar_head import ScalarHeadPRM

        return ScalarHeadPRM(path, device=cfg.device, dtype=cfg.dtype, batch_size=cfg.batch_size, separator=cfg.separator)
    from outrider.services.reward.prm.lm_judge import LMJudgePRM

    return LMJudgePRM(path, cfg, device=cfg.device)
