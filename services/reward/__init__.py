"""The reward service: outcome verifiers and process reward models (PRM).

Kept light: the CLI finds the service by module name without importing torch.
"""
