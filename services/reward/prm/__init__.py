"""Process reward models: cut trajectories into steps, score each step, shape the scores."""
