"""Outrider's gRPC services, one folder each: servicer.py (thin, delegates),
server.py (`create_server(cfg) -> BuiltServer`) and main.py (`main(argv)`)."""

from __future__ import annotations

if __name__ != "outrider.services":
    # `python -m pytest` and `python -c` put the repository root on sys.path, where this
    # folder would import as a second, separate package with its own module objects.
    raise ImportError(
        f"import outrider.services, not {__name__}: the folder services/ is installed as the package "
        "outrider.services (docs/development.md, Layout and imports); a bare import would load a second copy"
    )

import importlib
import importlib.util

from outrider.config.run import SERVICE_NAMES

# Service `<name>` runs as `python -m outrider.services.<name>.main`; the names are the
# config's one list (outrider.config.run.ServiceName).
SERVICE_MAIN_MODULES: dict[str, str] = {name: f"{__name__}.{name}.main" for name in SERVICE_NAMES}


def available_services() -> list[str]:
    """Services whose code is present in this installation."""
    present = []
    for name, module in SERVICE_MAIN_MODULES.items():
        try:
            found = importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:
            found = False
        if found:
            present.append(name)
    return present


def service_main(name: str):
    """The `main(argv) -> int` of a service."""
    if name not in SERVICE_MAIN_MODULES:
        raise KeyError(f"unknown service {name!r}; valid: {', '.join(SERVICE_MAIN_MODULES)}")
    return importlib.import_module(SERVICE_MAIN_MODULES[name]).main
