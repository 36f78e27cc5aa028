"""Layers import only downward: the test fails naming any module that imports a higher layer.

The order is ``worldsim.core.layers.LAYERS``. Every ``.py`` file of the installed packages (found
through ``[tool.setuptools] package-dir`` in pyproject.toml, so ``envs/`` is ``worldsim.envs``) is
parsed with ``ast``; imports at the top and inside functions count alike.
"""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

from worldsim.core.layers import LAYERS, layer_index

ROOT = Path(__file__).resolve().parents[1]


def package_modules() -> dict[str, Path]:
    """Module name -> file, for every package that pyproject.toml installs under ``worldsim``."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = setuptools["package-dir"]
    modules: dict[str, Path] = {}
    for package, folder in package_dir.items():
        for file in sorted((ROOT / folder).rglob("*.py")):
            parts = [*package.split("."), *file.relative_to(ROOT / folder).with_suffix("").parts]
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = file
    return modules


def imported_modules(file: Path, module: str, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported worldsim module) for every import in ``file``, relative ones resolved."""
    tree = ast.parse(file.read_text(), filename=str(file))
    package = module if file.stem == "__init__" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            for alias in node.names:
                # `from worldsim import envs` imports the module worldsim.envs; `from x import name` imports x
                submodule = f"{base}.{alias.name}"
                found.append((node.lineno, submodule if submodule in known else base))
    return [(line, name) for line, name in found if name == "worldsim" or name.startswith("worldsim.")]


def test_every_package_is_installed():
    # An editable install finds a package missing from `packages`; a wheel would not ship it.
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    folders = {name for name, file in package_modules().items() if file.name == "__init__.py"}
    missing = sorted(folders - set(setuptools["packages"]))
    assert not missing, f"packages not listed in pyproject.toml [tool.setuptools] packages: {missing}"


def test_every_module_has_a_layer():
    unplaced = [name for name in package_modules() if layer_index(name) is None]
    assert not unplaced, f"modules in no layer of worldsim.core.layers.LAYERS (place them there): {unplaced}"


def test_no_module_imports_a_higher_layer():
    modules = package_modules()
    known = set(modules) | {name.rpartition(".")[0] for name in modules}
    violations = []
    for module, file in modules.items():
        own = layer_index(module)
        for line, imported in imported_modules(file, module, known):
            target = layer_index(imported)
            if own is not None and target is not None and target < own:
                violations.append(
                    f"{file.relative_to(ROOT)}:{line}: {module} ({LAYERS[own].name}) imports {imported} ({LAYERS[target].name})"
                )
    assert not violations, "lower layers import higher ones:\n" + "\n".join(violations)


def test_the_checker_sees_function_level_and_relative_imports(tmp_path):
    file = tmp_path / "collect.py"
    file.write_text("import os\n\ndef f():\n    from worldsim.agents import Agent\n    from . import minari_io\n")
    found = imported_modules(file, "worldsim.data.collect", {"worldsim.data.minari_io", "worldsim.agents"})
    assert found == [(4, "worldsim.agents"), (5, "worldsim.data.minari_io")]
    assert layer_index("worldsim.agents") < layer_index("worldsim.data.collect")
