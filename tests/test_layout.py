"""The shape the redesign gave the project, kept by tests: one home per idea, a package that installs.

These check structure, not numbers: the model never imports kernels/, no script edits sys.path, train() reads as a
loop without nested functions, modules stay a size a reader can hold, `kernels` resolves to this repository's
folder, and a wheel holds both packages. Each would fail the day someone undoes that part of the layout.
"""
import ast
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(encoding="utf-8"), filename=str(path))


def _imported_modules(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_the_model_module_never_imports_the_kernels():
    imported = _imported_modules(ROOT / "minigpt" / "model.py")
    assert not {name for name in imported if name == "kernels" or name.startswith("kernels.")}, imported


def test_no_chapter_or_data_script_edits_sys_path():
    scripts = sorted((ROOT / "chapters").glob("*.py")) + sorted((ROOT / "data").rglob("*.py"))
    offenders = [str(p.relative_to(ROOT)) for p in scripts if "sys.path" in p.read_text(encoding="utf-8")]
    assert scripts and not offenders


def test_train_is_a_loop_without_nested_functions():
    tree = _tree(ROOT / "minigpt" / "train.py")
    train = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "train")
    nested = [n.name for n in ast.walk(train) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
              and n is not train]
    assert not nested
    assert train.end_lineno - train.lineno <= 100


@pytest.mark.parametrize("folder, limit", [("minigpt", 650), ("kernels", 700)])
def test_modules_stay_a_size_a_reader_can_hold(folder, limit):
    # ~600 lines for a teaching module (650 with slack), ~700 for the attention kernels; benchmarks are tooling
    # and not held to it (kernels/bench.py).
    sizes = {p.name: len(p.read_text(encoding="utf-8").splitlines()) for p in (ROOT / folder).glob("*.py")
             if not p.name.startswith("bench")}
    assert {name: n for name, n in sizes.items() if n > limit} == {}


def test_kernels_must_be_this_repositorys_folder(monkeypatch, tmp_path):
    from minigpt import backends
    impostor = tmp_path / "kernels"
    impostor.mkdir()
    (impostor / "__init__.py").write_text("")
    for name in [m for m in sys.modules if m == "kernels" or m.startswith("kernels.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setattr(backends, "_KERNELS", None)
    with pytest.raises(ImportError, match="another package named 'kernels'"):
        backends.load_kernels()


@pytest.mark.slow
def test_a_wheel_holds_both_packages(tmp_path):
    """pip wheel --no-deps . builds; the wheel carries minigpt/ and kernels/ (data/ stays in the repository)."""
    source = tmp_path / "source"   # a copy, so the build's own build/ folder is not left in the repository
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(".git", ".venv", ".ci-venv", "out", "runs", "build",
                                                                  "__pycache__", "*.egg-info", ".hypothesis"))
    result = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path),
                             str(source)], capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    wheel, = tmp_path.glob("minigpt-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {name.split("/")[0] for name in names}
    assert {"minigpt", "kernels"} <= tops and "data" not in tops
    assert "minigpt/train.py" in names and "kernels/attention.py" in names

