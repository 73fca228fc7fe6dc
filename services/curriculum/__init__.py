"""The curriculum service: which tasks to practise next, learned from reported outcomes.

Kept light: the CLI finds the service by module name without heavy imports.
"""
