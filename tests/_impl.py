"""Load a chapter module, or a learner's file standing in for it (see tests/conftest.py)."""
import importlib
import importlib.util
import os
import types
from pathlib import Path

_loaded: dict[str, types.ModuleType] = {}
_report: list[str] = []


def _learner_file_for(module_name: str) -> Path | None:
    spec = os.environ.get("MINIGPT_IMPL")
    if not spec:
        return None
    for part in spec.split(","):
        target, _, path = part.rpartition("=")
        if target in ("", module_name):
            file = Path(path).expanduser().resolve()
            if not file.is_file():
                raise FileNotFoundError(f"--impl/MINIGPT_IMPL names {path!r}, which is not a file")
            return file
    return None


def load_impl(module_name: str) -> types.ModuleType:
    """Return `module_name` (e.g. "minigpt.tokenizer"), with names from the learner's file where it defines them."""
    if module_name in _loaded:
        return _loaded[module_name]
    reference = importlib.import_module(module_name)
    file = _learner_file_for(module_name)
    if file is None:
        _loaded[module_name] = reference
        return reference
    spec = importlib.util.spec_from_file_location(f"learner_{file.stem}", file)
    learner = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(learner)
    merged = types.ModuleType(module_name)
    merged.__dict__.update({k: v for k, v in vars(reference).items() if not k.startswith("__")})
    public = [k for k, v in vars(reference).items() if not k.startswith("_") and _defined_in(v, module_name)]
    mine = [k for k in public if k in vars(learner)]
    merged.__dict__.update({k: getattr(learner, k) for k in mine})
    theirs = [k for k in public if k not in mine]
    _report.append(f"{module_name}: from {file.name}: {', '.join(mine) or 'nothing'}; "
                   f"from minigpt: {', '.join(theirs) or 'nothing'}")
    _loaded[module_name] = merged
    return merged


def _defined_in(value: object, module_name: str) -> bool:
    """True for the module's own functions, classes and constants; False for what it imported (torch, nn, ...)."""
    if isinstance(value, types.ModuleType) or type(value).__module__ == "__future__":
        return False
    if callable(value):
        return getattr(value, "__module__", module_name) == module_name
    return True


def describe_substitutions() -> list[str]:
    spec = os.environ.get("MINIGPT_IMPL")
    return [f"minigpt: testing your implementation {spec} (names it lacks come from minigpt)"] if spec else []


def substitution_report() -> list[str]:
    """One line per substituted module: the names taken from the learner's file and those from minigpt."""
    return list(_report)
