"""`outrider experiment RECIPE`: arms of one run config side by side, with seeds (docs/research.md).

A recipe (YAML in examples/experiments/) names a base run config per scale and arms
that differ from it only in named dotted keys; every arm × seed is a real
`outrider train` run, and the experiment's report and JSON hold what those runs
measured. `surrogate-toy` is the exception: a closed-form toy without a model.

Nothing is imported here: the env service never loads this package, and the CLI
imports the modules it needs.
"""
