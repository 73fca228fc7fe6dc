"""Package layout: one distribution, one import root.

The top-level folders services/, envs/ and learner/ are installed as
`outrider.services`, `outrider.envs` and `outrider.learner` (docs/development.md,
Layout and imports). outrider/ holds a relative symlink to each, so that a checkout
imports the same way as an installation; the mapping below names the real folders.
pyproject.toml holds the metadata; only the folder-to-package mapping lives here
because it is computed from the tree.
"""

from setuptools import find_packages, setup

MAPPED_ROOTS = {"outrider.services": "services", "outrider.envs": "envs", "outrider.learner": "learner"}


def _mapped_packages(package: str, folder: str) -> list[str]:
    return [package] + [f"{package}.{sub}" for sub in find_packages(folder)]


# The symlinks outrider/{services,envs,learner} are left to the mapping (find_packages follows links).
packages = find_packages(include=["outrider", "outrider.*"], exclude=[f"{p}{tail}" for p in MAPPED_ROOTS for tail in ("", ".*")])
for package, folder in MAPPED_ROOTS.items():
    packages += _mapped_packages(package, folder)

setup(
    packages=packages,
    package_dir={"outrider": "outrider", **MAPPED_ROOTS},
    package_data={"": ["*.pyi", "py.typed", "*.json", "*.jsonl", "*.yaml"]},
)
