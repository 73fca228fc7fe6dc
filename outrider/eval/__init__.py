"""Checkpoint evaluation: pass@k up to large k, bootstrap intervals, the crossover k,
solvable sets, perplexity under the base model and entropy statistics (the
reasoning-boundary report of `outrider eval`).

The sampling side: `runner` is the command (`outrider eval`); `checkpoints` resolves
`NAME=SOURCE` arguments and checks that they can be compared; `dispatch` fans one
checkpoint's tasks out over the Celery rollout workers; `store` keeps what is done on
disk so an interrupted evaluation resumes; `scoring` scores correct solutions under the
base model.

The analysis side: `records` is the on-disk format the sampler writes and the analysis
reads; `stats` holds the pure estimators; `analysis` assembles them into one
JSON-serialisable dict; `report` renders it as HTML, PNGs and eval.json.
"""
