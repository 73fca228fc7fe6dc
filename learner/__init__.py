"""outrider.learner"""

if __name__ != "outrider.learner":
    # `python -m pytest` and `python -c` put the repository root on sys.path, where this
    # folder would import as a second, separate package with its own module objects.
    raise ImportError(
        f"import outrider.learner, not {__name__}: the folder learner/ is installed as the package "
        "outrider.learner (docs/development.md, Layout and imports); a bare import would load a second copy"
    )
