"""The front-end files the staff console serves, installed from package-lock.json by `make console-assets`.

`VENDOR_FILES` maps the name under the console's static URL (``/static/<name>``) to the installed
file; the app checks `missing_assets()` at start and refuses to run without them.
"""
from __future__ import annotations

from pathlib import Path

CONSOLE_DIR = Path(__file__).resolve().parent
NODE_MODULES = CONSOLE_DIR / "node_modules"
INSTALL_HINT = "run make console-assets"

VENDOR_FILES: dict[str, Path] = {
    "htmx.min.js": NODE_MODULES / "htmx.org" / "dist" / "htmx.min.js",
}


def missing_assets() -> list[str]:
    """The vendor files that are not installed, as "name (path)"; empty when all are there."""
    missing = []
    for name, path in VENDOR_FILES.items():
        if not path.is_file():
            try:
                shown = path.relative_to(CONSOLE_DIR.parent.parent)
            except ValueError:
                shown = path
            missing.append(f"{name} ({shown})")
    return missing
