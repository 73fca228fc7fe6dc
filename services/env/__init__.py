"""The environment service: registered environments (Python or remote), sessions, steps.

Kept light: the CLI finds the service by module name without importing it.
"""
