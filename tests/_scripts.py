"""What the script-level tests of several chapters share: loading a script file, and running its main(argv) to a
one-line error."""
import importlib.util
import types
from pathlib import Path

import pytest


def load_script(path: str | Path, name: str | None = None) -> types.ModuleType:
    """A script file as a module, without running its `if __name__ == "__main__"` part (chapters/ and data/ are
    folders of scripts, not packages)."""
    path = Path(path)
    spec = importlib.util.spec_from_file_location(name or path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def stopped_with_one_line(main, argv, capsys) -> str:
    """main(argv) must end with exit status 2 and a single line on stderr (no traceback); that line."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()
