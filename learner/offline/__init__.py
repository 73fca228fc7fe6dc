"""Offline trainers on the RL learner's DeepSpeed actor: `outrider sft` and `outrider dpo`.

    data.py        JSONL datasets (chat, preference pairs, TrajectoryGroups, eval samples)
    render.py      chat template rendering with the assistant-token loss mask
    objectives.py  SFT's token-mean NLL; DPO/IPO from the preference-loss registry
    trainer.py     the shared step loop: micro-batches, backward, step, metrics, checkpoint, HF export
    main.py        one rank's entry point (under torchrun)
"""
