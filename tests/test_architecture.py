"""The layering rules of the package, enforced by walking every module's imports."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
STDLIB_OK_IN_KERNELS = {"__future__", "math", "os", "typing", "collections"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            out.add(node.module.split(".")[0])
    return out


def _modules(pkg: str) -> list[Path]:
    return sorted((ROOT / pkg).rglob("*.py"))


#: the store: the only code that touches SQLite (a module, or a package of modules)
STORE_FILES = {p.relative_to(ROOT).as_posix() for p in
               [ROOT / "engine" / "store" / "region.py", *(ROOT / "engine" / "store").glob("*.py")]
               if p.exists()}


def test_no_sql_outside_the_store():
    """No SQL statement, connection or catalog handle outside the store: other modules go
    through its methods, so the schema has one owner."""
    import re

    sql_use = re.compile(r"\.(execute|executemany|executescript)\(|\.db\b|\bsqlite3\b|"
                         r"\b(SELECT|INSERT|UPDATE|DELETE)\s+(\*|[a-z_]+\s*(,|FROM|INTO|SET))")
    for path in _modules("engine"):
        rel = path.relative_to(ROOT).as_posix()
        if rel in STORE_FILES:
            continue
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            assert not sql_use.search(line), f"{rel}:{n} uses SQL or the catalog handle: {line.strip()}"


def test_kernels_import_only_numpy_numba_math():
    for path in _modules("kernels"):
        bad = _imports(path) - {"numpy", "numba", "kernels", "llvmlite"} - STDLIB_OK_IN_KERNELS
        assert not bad, f"{path.relative_to(ROOT)} imports {sorted(bad)}: kernels do no I/O and know no engine"


@pytest.mark.parametrize(
    ("module", "allowed"),
    [
        ("faiss", {"engine/index/__init__.py", "engine/index/keyframes.py", "engine/index/embeddings.py"}),
        ("sqlite3", STORE_FILES),
        ("zarr", STORE_FILES | {"engine/sources/zarr_clips.py", "engine/curation/export.py"}),
    ],
)
def test_io_libraries_stay_in_their_module(module, allowed):
    for path in _modules("engine"):
        rel = path.relative_to(ROOT).as_posix()
        if module in _imports(path):
            assert rel in allowed, f"{rel} imports {module}; only {sorted(allowed)} may"


def test_cli_imports_no_heavy_modules():
    code = (
        "import sys, engine.surfaces.cli\n"
        "heavy = [m for m in ('numpy', 'numba', 'faiss', 'zarr', 'av') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"clipdex --help would import {out.stdout.strip()}"


def test_importing_kernels_compiles_nothing():
    code = (
        "import kernels, numba\n"
        "from numba.core.registry import CPUDispatcher\n"
        "import kernels as k, sys\n"
        "mods = [m for n, m in sys.modules.items() if n.startswith('kernels')]\n"
        "compiled = [f'{m.__name__}.{n}' for m in mods for n, f in vars(m).items()\n"
        "            if isinstance(f, CPUDispatcher) and f.signatures]\n"
        "print(','.join(compiled))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "", f"importing kernels compiled: {out.stdout.strip()}"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _load_time_imports(path: Path, name: str, known: set[str]) -> set[str]:
    """Engine modules that loading ``path`` imports: statements at module level (inside ``try``
    and ``if`` too, except ``if TYPE_CHECKING:``), not those inside functions, which run when a
    command needs them."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()

    def visit(stmts):
        for node in stmts:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parent + ([node.module] if node.module else []))
                out.add(base)
                out.update(f"{base}.{a.name}" for a in node.names)
            for field in ("body", "orelse", "handlers", "finalbody"):
                visit(getattr(node, field, []) or [])

    visit(ast.parse(path.read_text(encoding="utf-8")).body)
    return {m for m in out if m in known and m != name}


def longest_import_chain() -> list[str]:
    """The longest chain of engine modules each importing the next when loaded."""
    paths = {_module_name(p): p for p in _modules("engine")}
    graph = {m: _load_time_imports(p, m, set(paths)) for m, p in paths.items()}
    best: dict[str, list[str]] = {}

    def chain(m: str, seen: frozenset) -> list[str]:
        if m in best:
            return best[m]
        longest = max((chain(d, seen | {m}) for d in graph[m] if d not in seen), key=len, default=[])
        best[m] = [m, *longest]
        return best[m]

    return max((chain(m, frozenset()) for m in sorted(graph)), key=len)


def test_import_chains_are_short():
    """A reader follows at most 7 engine modules from any module down to its last dependency."""
    longest = longest_import_chain()
    assert len(longest) <= 7, " -> ".join(longest)
