"""outrider.learner"""
