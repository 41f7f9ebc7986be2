"""What the script-level tests of several chapters share: running a chapter's main(argv) to a one-line error."""
import pytest


def stopped_with_one_line(main, argv, capsys) -> str:
    """main(argv) must end with exit status 2 and a single line on stderr (no traceback); that line."""
    with pytest.raises(SystemExit) as stop:
        main(argv)
    err = capsys.readouterr().err
    assert stop.value.code == 2 and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    return err.strip()
