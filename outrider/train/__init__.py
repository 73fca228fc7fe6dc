"""`outrider train`: the whole loop — services, rollout workers, learner — and its evaluation."""
