"""Example environments that are not part of the env service."""
