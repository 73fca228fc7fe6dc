"""Checkpoint evaluation: pass@k up to large k, bootstrap intervals, the crossover k,
solvable sets, perplexity under the base model and entropy statistics (the
reasoning-boundary report of `outrider eval`).

`records` is the on-disk format the sampler writes and the analysis reads; `stats`
holds the pure estimators; `analysis` assembles them into one JSON-serialisable dict;
`report` renders it as HTML, PNGs and eval.json.
"""
