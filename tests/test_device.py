"""The --device option: auto picks what is there, a missing GPU is a clear error, nonsense is refused."""
import pytest
import torch

from minigpt.device import pick_device


def test_auto_is_cuda_exactly_when_torch_sees_a_gpu():
    assert pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")


def test_cpu_is_always_there():
    assert pick_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message given when there is no GPU")
def test_asking_for_a_missing_gpu_says_so():
    with pytest.raises(ValueError, match="no CUDA GPU"):
        pick_device("cuda")


def test_an_unknown_device_name_is_refused_with_the_choices():
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        pick_device("gpu")
