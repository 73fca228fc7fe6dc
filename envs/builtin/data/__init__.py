"""Data shipped with the built-in environments (a package so installs include it)."""
