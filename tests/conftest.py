"""Shared pytest set-up: the `--impl` option that turns the tests into exercises, and the `gpu` marker.

    pytest tests/test_ch01_tokenizer.py --impl my_tokenizer.py
    MINIGPT_IMPL=my_tokenizer.py pytest tests/test_ch01_tokenizer.py

The learner's file defines some of the chapter's public names; the tests use those, and fall back to minigpt's
own version for every name the file does not define (a header line says which came from where).
`--impl minigpt.attention=my_attention.py` restricts the substitution to one module, for runs of several chapters.
"""
import os

import pytest
import torch

if not torch.cuda.is_available():
    # Without a GPU, Triton kernels (chapter 5) run in Triton's interpreter on the CPU. The variable must be set
    # before any test module imports triton, whichever module comes first.
    os.environ.setdefault("TRITON_INTERPRET", "1")


def pytest_addoption(parser):
    parser.addoption("--impl", default=None, metavar="[MODULE=]FILE",
                     help="run the tests against your own implementation file (see README, 'Tests as exercises')")


def pytest_configure(config):
    # Test modules pick their implementation when they are imported, so pass the option on before collection.
    impl = config.getoption("--impl")
    if impl:
        os.environ["MINIGPT_IMPL"] = impl


def pytest_report_header(config):
    from tests._impl import describe_substitutions
    return describe_substitutions()


def pytest_report_collectionfinish(config, start_path, items):
    # Test modules have been imported by now, so each substituted module can say which names came from where.
    from tests._impl import substitution_report
    return substitution_report()


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU (run on a GPU machine: pytest -m gpu)")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """Run a module's small matrix products on one thread (use: pytestmark = pytest.mark.usefixtures("one_thread")).

    On a busy 2-core machine a second thread is often descheduled and every parallel op waits for it (10x
    slower); results do not depend on the thread count beyond float summation order, which the tests'
    tolerances already cover."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
