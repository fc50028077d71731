"""Where the lab lives: the project root (the folder holding lab.yaml) and the paths under it.

Defaults resolve from the project root, searched upward from the working directory, so a
notebook in ``notebooks/`` and the CLI at the root share one lab in ``<root>/.lab``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import LabError
from runtime.identity import ENV_PROJECT_ROOT

CONFIG_NAME = "lab.yaml"
DEFAULT_LAB_DIR = ".lab"


@dataclass(frozen=True)
class LabPaths:
    """The resolved locations of one lab."""

    root: Path
    lab_dir: Path
    config: Path


def find_project_root(start: Path | None = None) -> Path:
    """The nearest folder at or above ``start`` (default: cwd) that holds lab.yaml.

    Raises:
        LabError: no lab.yaml anywhere above; says where it looked and what to do.
    """
    env_root = os.environ.get(ENV_PROJECT_ROOT)
    if env_root and (Path(env_root) / CONFIG_NAME).is_file():
        return Path(env_root).resolve()
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_NAME).is_file():
            return folder
    raise LabError(
        f"no {CONFIG_NAME} found in {here} or any folder above it; run from the lab project "
        f"(or a folder inside it), or pass config='path/to/{CONFIG_NAME}'"
    )


def resolve(
    lab_dir: str | os.PathLike[str] | None = None, config: str | os.PathLike[str] | None = None
) -> LabPaths:
    """Resolve ``lab_dir`` and ``config``; relative paths count from the project root."""
    if config is not None and Path(config).is_absolute():
        cfg = Path(config)
        root = cfg.parent
    else:
        root = find_project_root()
        cfg = root / (config or CONFIG_NAME)
    if not cfg.is_file():
        raise LabError(f"lab config {cfg} does not exist")
    d = Path(lab_dir) if lab_dir is not None else Path(DEFAULT_LAB_DIR)
    if not d.is_absolute():
        d = root / d
    return LabPaths(root=root.resolve(), lab_dir=d.resolve(), config=cfg.resolve())
