"""Tests for chapter 7: the safetensors reader/writer and GPT-2 loading, checked against Hugging Face.

Everything runs offline. The references are independent implementations: the `safetensors` package for the
file format, and transformers' GPT2LMHeadModel for the model, whose randomly initialised checkpoints (every
size's width and head count, one or two layers to stay fast) are built once per session. Every weight,
biases and LayerNorm parameters included, is drawn at random: with transformers' own initialisation the
biases are zero and a wrongly mapped bias would go unnoticed.
"""
import json
import resource
import struct
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import safetensors.numpy
import safetensors.torch
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from minigpt.files import InputError
from minigpt.generate import generate
from minigpt.model import count_parameters
from tests._impl import load_impl

gpt2 = load_impl("minigpt.gpt2")
stio = load_impl("minigpt.safetensors_io")

transformers = pytest.importorskip("transformers")


pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py

# The width and head count of each released size; fewer layers than the real ones (the mapping is the
# same for every layer, and two layers check that layer i's weights land in block i).
SHAPES = {"gpt2": (768, 12, 2), "gpt2-medium": (1024, 16, 1), "gpt2-large": (1280, 20, 1), "gpt2-xl": (1600, 25, 1)}


def randomise(model: torch.nn.Module, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".ln_" in name or "ln_f" in name:
                centre = 1.0 if name.endswith("weight") else 0.0
                p.copy_(centre + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.05 * torch.randn(p.shape, generator=g))


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    """{size: (directory, transformers model)} for GPT-2-shaped checkpoints with random weights."""
    root = tmp_path_factory.mktemp("gpt2_checkpoints")
    out = {}
    for i, (name, (width, heads, layers)) in enumerate(SHAPES.items()):
        config = transformers.GPT2Config(n_embd=width, n_head=heads, n_layer=layers, vocab_size=50257,
                                         n_positions=1024)
        torch.manual_seed(i)
        model = transformers.GPT2LMHeadModel(config).eval()
        randomise(model, seed=i)
        model.save_pretrained(root / name, safe_serialization=True)
        out[name] = (root / name, model)
    return out


def tokens(batch=2, length=24, seed=0):
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, 50257, (batch, length), generator=g)
    ids[0, 0] = 50256  # the last vocabulary entry (<|endoftext|>) too
    return ids


# ---- exactness against transformers ------------------------------------------------------------------

@pytest.mark.parametrize("size", list(SHAPES))
def test_logits_equal_transformers(checkpoints, size):
    directory, reference = checkpoints[size]
    model = gpt2.load_gpt2(directory)
    ids = tokens()
    with torch.no_grad():
        ours = model(ids)
        theirs = reference(ids).logits
    # Both compute the same float32 operations, possibly in a different order (one fused qkv product
    # vs three, fused vs explicit attention softmax); each rounds at ~1e-7 relative, and through one or
    # two blocks and 1600-wide sums that stays far below 1e-5 for logits of size ~10. 1e-4 leaves margin
    # while catching any mapping error, which moves logits by O(1).
    assert ours.shape == theirs.shape == (2, 24, 50257)
    torch.testing.assert_close(ours, theirs, atol=1e-4, rtol=0)


def test_cached_greedy_generation_equals_transformers_generate(checkpoints):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory)
    prompt = tokens(batch=1, length=6, seed=3)
    ours = generate(model, prompt, max_new_tokens=12, use_cache=True)
    theirs = reference.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=12, do_sample=False,
                                pad_token_id=50256)
    assert torch.equal(ours, theirs)


# ---- the safetensors reader and writer ---------------------------------------------------------------

def test_reader_matches_safetensors_package_on_a_checkpoint(checkpoints):
    file = checkpoints["gpt2"][0] / "model.safetensors"
    ours = stio.load_safetensors(file)
    theirs = safetensors.torch.load_file(file)
    assert ours.keys() == theirs.keys()
    for key in theirs:
        assert ours[key].dtype == theirs[key].dtype and torch.equal(ours[key], theirs[key]), key


ODD_TENSORS = {
    "f64": np.linspace(-1, 1, 7, dtype=np.float64),
    "f32": np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 7,
    "f16": np.array([[1.5, -2.25], [65504, 6e-5]], dtype=np.float16),
    "i64": np.array([-(2 ** 62), 0, 2 ** 62], dtype=np.int64),
    "i32": np.array([7, -7], dtype=np.int32),
    "i8": np.array([-128, 127], dtype=np.int8),
    "u8": np.arange(5, dtype=np.uint8),
    "bool": np.array([True, False, True]),
    "scalar": np.array(3.0, dtype=np.float32),
    "empty": np.zeros((0, 3), dtype=np.float32),
}


def test_reader_handles_every_dtype_written_by_the_package(tmp_path):
    file = tmp_path / "odd.safetensors"
    safetensors.numpy.save_file(ODD_TENSORS, file, metadata={"who": "test"})
    ours = stio.load_safetensors(file)
    for key, value in ODD_TENSORS.items():
        assert ours[key].shape == value.shape, key
        np.testing.assert_array_equal(ours[key].numpy(), value)
    assert stio.read_header(file)[1] == {"who": "test"}


def test_writer_output_reads_back_in_the_package(tmp_path):
    g = torch.Generator().manual_seed(0)
    tensors = {name: torch.from_numpy(value.copy()) for name, value in ODD_TENSORS.items()}
    tensors["bf16"] = torch.randn(3, 5, generator=g).to(torch.bfloat16)
    tensors["transposed"] = torch.randn(4, 6, generator=g).T        # not contiguous: written row-major
    file = stio.save_safetensors(tensors, tmp_path / "ours.safetensors", metadata={"format": "pt"})
    theirs = safetensors.torch.load_file(file)
    assert theirs.keys() == tensors.keys()
    for key, value in tensors.items():
        assert theirs[key].dtype == value.dtype and torch.equal(theirs[key], value), key
    header_len = struct.unpack("<Q", file.read_bytes()[:8])[0]
    assert (8 + header_len) % 8 == 0, "data should start 8-byte aligned"


def test_loaded_tensors_are_copy_on_write_views_of_the_file(tmp_path):
    file = stio.save_safetensors({"w": torch.arange(6, dtype=torch.float32)}, tmp_path / "w.safetensors")
    before = file.read_bytes()
    w = stio.load_safetensors(file)["w"]
    w.mul_(100)        # allowed (copy-on-write memory), and must not reach the file
    assert w[1].item() == 100.0
    assert file.read_bytes() == before


def test_reader_rejects_damaged_files(tmp_path):
    good = stio.save_safetensors({"w": torch.ones(10)}, tmp_path / "good.safetensors").read_bytes()
    (tmp_path / "cut.safetensors").write_bytes(good[:-8])
    with pytest.raises(ValueError, match="truncated or corrupt"):
        stio.load_safetensors(tmp_path / "cut.safetensors")
    (tmp_path / "junk.safetensors").write_bytes(b"\xff" * 64)
    with pytest.raises(ValueError, match="not a safetensors file"):
        stio.load_safetensors(tmp_path / "junk.safetensors")


# ---- the header parser on damaged and hostile files: hand-made cases, then a property-based fuzz ----------

def safetensors_bytes(header, data: bytes = b"", raw: bytes | None = None) -> bytes:
    """A file from the format spec: 8-byte length, the JSON header (or `raw` bytes as the header), the data."""
    text = raw if raw is not None else json.dumps(header).encode()
    return struct.pack("<Q", len(text)) + text + data


def f32_entry(begin: int, shape=(1,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": [begin, begin + 4 * int(np.prod(shape))]}


FOUR = struct.pack("<f", 1.5)
DAMAGED_HEADERS = {
    # name: (file bytes, a piece of the message)
    "nested 100,000 deep": (safetensors_bytes(None, raw=b"[" * 100_000 + b"]" * 100_000), "nested too deeply"),
    "nested inside an entry": (safetensors_bytes(None, FOUR, raw=b'{"w": {"dtype": "F32", "shape": [1], '
                                                 b'"data_offsets": [0, 4], "x": ' + b"[" * 50_000 + b"]" * 50_000
                                                 + b"}}"), "nested too deeply"),
    "negative size": (safetensors_bytes({"w": {"dtype": "F32", "shape": [-1, -1], "data_offsets": [0, 4]}}, FOUR),
                      "a shape is a list of sizes"),
    "fractional size": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1.0], "data_offsets": [0, 4]}}, FOUR),
                        "a shape is a list of sizes"),
    "size true": (safetensors_bytes({"w": {"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}}, FOUR),
                  "a shape is a list of sizes"),
    "shape a string": (safetensors_bytes({"w": {"dtype": "F32", "shape": "1", "data_offsets": [0, 4]}}, FOUR),
                       "a shape is a list of sizes"),
    "empty tensor too large to describe": (safetensors_bytes({"w": {"dtype": "F32", "shape": [0, 2 ** 62, 4],
                                                                    "data_offsets": [0, 0]}}), "too large"),
    "offsets of three": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4, 4]}}, FOUR),
                         "expected [begin, end]"),
    "offsets backwards": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}}, FOUR),
                          "expected [begin, end]"),
    "offsets as text": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1], "data_offsets": ["0", "4"]}}, FOUR),
                        "expected [begin, end]"),
    "bytes not matching the shape": (safetensors_bytes({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}},
                                                       FOUR), "needs 8 bytes"),
    "overlapping tensors": (safetensors_bytes({"a": f32_entry(0), "b": f32_entry(0)}, FOUR), "overlaps"),
    "a gap before a tensor": (safetensors_bytes({"w": f32_entry(4)}, bytes(4) + FOUR), "unused"),
    "data_offsets beyond the file": (safetensors_bytes({"w": f32_entry(0, (4,))}, FOUR), "truncated or corrupt"),
    "bytes after the last tensor": (safetensors_bytes({"w": f32_entry(0)}, FOUR + b"hidden"), "belong to none"),
    "unknown dtype": (safetensors_bytes({"w": {"dtype": "F33", "shape": [1], "data_offsets": [0, 4]}}, FOUR),
                      "dtype 'F33'"),
    "dtype a list": (safetensors_bytes({"w": {"dtype": ["F32"], "shape": [1], "data_offsets": [0, 4]}}, FOUR),
                     "dtype ['F32']"),
    "entry without data_offsets": (safetensors_bytes({"w": {"dtype": "F32", "shape": [1]}}, FOUR),
                                   "needs dtype, shape and data_offsets"),
    "header length larger than the file": (struct.pack("<Q", 1000) + b"{}", "announce a 1000-byte header"),
    "header length 2**64 - 1": (struct.pack("<Q", 2 ** 64 - 1) + b"{}", "not a safetensors file"),
    "shorter than 8 bytes": (b"\x02\x00", "shorter than the 8-byte header length"),
    "header not JSON": (safetensors_bytes(None, raw=b"{'w': 1}"), "not valid JSON"),
    "header not UTF-8": (safetensors_bytes(None, raw=b'{"\xff": 1}'), "not UTF-8"),
    "header a list": (safetensors_bytes([]), "must be a JSON object"),
    "NaN in the header": (safetensors_bytes(None, FOUR, raw=b'{"w": {"dtype": "F32", "shape": [1], '
                                                             b'"data_offsets": [0, 4], "x": NaN}}'), "not valid JSON"),
    "a name twice": (safetensors_bytes(None, FOUR, raw=b'{"w": {"dtype": "F32", "shape": [1], '
                                                       b'"data_offsets": [0, 4]}, "w": {"dtype": "F32", '
                                                       b'"shape": [1], "data_offsets": [0, 4]}}'), "appears twice"),
    "metadata not strings": (safetensors_bytes({"__metadata__": {"epoch": 3}}), "__metadata__"),
}


@pytest.mark.parametrize("name", list(DAMAGED_HEADERS))
def test_damaged_header_is_refused_with_the_file_named(tmp_path, name):
    data, message = DAMAGED_HEADERS[name]
    path = tmp_path / "damaged.safetensors"
    path.write_bytes(data)
    with pytest.raises(InputError) as err:
        stio.load_safetensors(path)
    assert str(path) in str(err.value) and message in str(err.value)
    assert "\n" not in str(err.value)          # a chapter script prints it as one line
    # The independent reader refuses every one of them too, but for a name given twice: the format forbids it,
    # the package's JSON reader keeps the last.
    assert (package_load(data) is None) == (name != "a name twice")


def test_misaligned_tensor_loads_like_the_package_does(tmp_path):
    # The format lets a tensor start at any byte; a float32 at offset 1 is read through an aligned copy.
    data = safetensors_bytes(None, b"\x07" + FOUR * 2, raw=b'{"b": {"dtype": "U8", "shape": [1], "data_offsets": '
                                                          b'[0, 1]}, "w": {"dtype": "F32", "shape": [2], '
                                                          b'"data_offsets": [1, 9]}}')
    path = tmp_path / "misaligned.safetensors"
    path.write_bytes(data)
    ours = stio.load_safetensors(path)
    assert ours["w"].data_ptr() % 4 == 0
    assert torch.equal(ours["w"], torch.tensor([1.5, 1.5])) and ours["b"].tolist() == [7]
    assert torch.equal(ours["w"], safetensors.torch.load(data)["w"])


# What the fuzz draws: small valid files written by the package (every dtype this reader knows, empty tensors and
# scalars included), then bytes flipped, inserted, deleted, cut or added, the length field rewritten, or header
# fields replaced by arbitrary JSON. Each file is checked against the package: both must agree on whether it is
# valid, and on every byte of every tensor when it is.
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-2 ** 70, 2 ** 70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=4),
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=3), children, max_size=3),
    max_leaves=6)
TENSOR_NAMES = st.text(alphabet="ab.0_é", min_size=1, max_size=3)


@st.composite
def valid_files(draw) -> bytes:
    tensors = {}
    for name in draw(st.lists(TENSOR_NAMES, unique=True, max_size=4)):
        dtype = stio.DTYPES[draw(st.sampled_from(sorted(stio.DTYPES)))]
        shape = draw(st.lists(st.integers(0, 3), max_size=3))
        size = int(np.prod(shape)) * dtype.itemsize
        raw = bytearray(draw(st.binary(min_size=size, max_size=size)))
        tensors[name] = (torch.frombuffer(raw, dtype=torch.uint8).view(dtype) if size else
                         torch.empty(0, dtype=dtype)).reshape(shape)
    # (An empty metadata dict is left out: safetensors 0.8 writes the header of such a file as invalid JSON.)
    metadata = draw(st.none() | st.dictionaries(st.text(max_size=3), st.text(max_size=3), min_size=1, max_size=2))
    return safetensors.torch.save(tensors, metadata=metadata)


@st.composite
def byte_damage(draw) -> bytes:
    data = bytearray(draw(valid_files()))
    for _ in range(draw(st.integers(1, 3))):
        where = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["set", "insert", "delete", "cut", "append", "length"]))
        if kind == "set" and where < len(data):
            data[where] = draw(st.integers(0, 255))
        elif kind == "insert":
            data[where:where] = draw(st.binary(min_size=1, max_size=3))
        elif kind == "delete":
            del data[where:where + draw(st.integers(1, 3))]
        elif kind == "cut":
            del data[where:]
        elif kind == "append":
            data += draw(st.binary(min_size=1, max_size=8))
        elif kind == "length":
            length = draw(st.integers(0, 2 ** 64 - 1) | st.integers(0, len(data) + 8))
            data[:8] = struct.pack("<Q", length)
    return bytes(data)


@st.composite
def header_damage(draw) -> bytes:
    data = draw(valid_files())
    (length,) = struct.unpack("<Q", data[:8])
    header, body = json.loads(data[8:8 + length]), data[8 + length:]
    for _ in range(draw(st.integers(1, 3))):
        names = [name for name in header if name != "__metadata__"]
        target = draw(st.sampled_from(names + ["__metadata__", "a new entry"]))
        if target == "__metadata__":
            header[target] = draw(JSON_VALUES)
        elif target == "a new entry":
            header[draw(TENSOR_NAMES)] = draw(JSON_VALUES | st.just({"dtype": "F32", "shape": [1],
                                                                     "data_offsets": [0, 4]}))
        elif isinstance(header[target], dict):
            field = draw(st.sampled_from(["dtype", "shape", "data_offsets", "extra", "drop"]))
            entry = header[target]
            if field == "dtype":
                entry[field] = draw(st.sampled_from(sorted(stio.DTYPES) + ["C64", "F8_E8M0", "f32", ""]) | JSON_VALUES)
            elif field == "shape":
                entry[field] = draw(st.lists(st.integers(-2, 2 ** 40), max_size=3) | JSON_VALUES)
            elif field == "data_offsets" and isinstance(entry.get(field), list):   # shift them a little
                entry[field] = [n + draw(st.integers(-4, 4)) for n in entry[field]]
            elif field == "extra":
                entry[draw(st.text(max_size=3))] = draw(JSON_VALUES)
            else:
                del header[target]
    raw = json.dumps(header, ensure_ascii=False).encode() + b" " * draw(st.integers(0, 7))
    body = body[:draw(st.integers(0, len(body)))] if draw(st.booleans()) else body
    return struct.pack("<Q", len(raw)) + raw + body


def has_duplicate_names(data: bytes) -> bool:
    """True if the header parses as JSON with some object naming a key twice (which the format forbids)."""
    seen_twice = []

    def pairs(items):
        keys = [k for k, _ in items]
        seen_twice.append(len(keys) != len(set(keys)))
        return dict(items)

    try:
        (length,) = struct.unpack("<Q", data[:8])
        json.loads(data[8:8 + length].decode("utf-8"), object_pairs_hook=pairs)
    except Exception:   # noqa: BLE001 - not parseable at all: no duplicates to speak of
        return False
    return any(seen_twice)


def package_load(data: bytes) -> dict[str, torch.Tensor] | None:
    """The safetensors package's reading of `data`, or None when it refuses it (however it does so)."""
    try:
        return safetensors.torch.load(data)
    except BaseException as error:  # noqa: BLE001 - pyo3 panics derive from BaseException
        if isinstance(error, (KeyboardInterrupt, SystemExit)):
            raise
        return None


def check_against_package(path, data: bytes) -> dict[str, torch.Tensor] | None:
    """Load `data` with this reader and with the package; they must agree. Returns this reader's tensors."""
    path.write_bytes(data)
    started = time.perf_counter()
    try:
        ours = stio.load_safetensors(path)   # any exception but InputError fails the test
    except InputError as error:
        assert str(path) in str(error)
        ours = None
    assert time.perf_counter() - started < 5, "a small file must never take long"
    theirs = package_load(data)
    if ours is not None:
        assert theirs is not None, "accepted a file the safetensors package refuses"
        assert ours.keys() == theirs.keys()
        for name, tensor in theirs.items():
            assert ours[name].dtype == tensor.dtype and ours[name].shape == tensor.shape, name
            assert torch.equal(ours[name].reshape(-1).view(torch.uint8), tensor.reshape(-1).view(torch.uint8)), name
    elif theirs is not None:
        # Refusing what the package reads is right only for dtypes this reader does not know, and for names
        # given twice (which the format forbids but the package's JSON reader lets through).
        assert any(t.dtype not in stio.DTYPE_NAMES for t in theirs.values()) or has_duplicate_names(data)
    return ours


@pytest.fixture(scope="module")
def fuzz_file(tmp_path_factory):
    return tmp_path_factory.mktemp("fuzz") / "fuzzed.safetensors"


@pytest.fixture(scope="module")
def peak_memory_before_fuzz():
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    yield
    # ru_maxrss is the process's peak (KiB on Linux): the files are tiny, so a reader that believed a header and
    # allocated what it announced would raise the peak by gigabytes.
    grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mib < 1024, f"the fuzzed reads raised the peak memory by {grown_mib:.0f} MiB"


FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(data=valid_files())
def test_fuzz_valid_files_read_exactly_as_the_package_reads_them(fuzz_file, peak_memory_before_fuzz, data):
    assert check_against_package(fuzz_file, data) is not None


@FUZZ
@given(data=st.binary(max_size=64) | byte_damage())
def test_fuzz_damaged_bytes_load_correctly_or_raise_input_error(fuzz_file, peak_memory_before_fuzz, data):
    check_against_package(fuzz_file, data)


@FUZZ
@given(data=header_damage())
def test_fuzz_mutated_headers_load_correctly_or_raise_input_error(fuzz_file, peak_memory_before_fuzz, data):
    check_against_package(fuzz_file, data)


# ---- loading: options and errors ---------------------------------------------------------------------

@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16, "bf16"])
def test_dtype_option_rounds_each_weight_once(checkpoints, dtype):
    directory = checkpoints["gpt2"][0]
    full = gpt2.load_gpt2(directory)
    half = gpt2.load_gpt2(directory, dtype=dtype)
    want = {"bf16": torch.bfloat16}.get(dtype, dtype)
    full_params = dict(full.named_parameters())
    for name, p in half.named_parameters():
        assert p.dtype == want, name
        assert torch.equal(p, full_params[name].to(want)), name   # one rounding from the float32 file


def test_head_is_tied_to_the_embedding(checkpoints):
    model = gpt2.load_gpt2(checkpoints["gpt2"][0])
    assert model.out_head.weight is model.tok_emb.weight
    assert model.cfg.tie_weights and model.cfg.qkv_bias
    untied = gpt2.load_gpt2(checkpoints["gpt2"][0], tie_weights=False)
    assert untied.out_head.weight is not untied.tok_emb.weight
    assert torch.equal(untied.out_head.weight, untied.tok_emb.weight)
    assert count_parameters(untied) - count_parameters(model) == 50257 * 768


def test_config_is_inferred_and_overrides_apply(checkpoints):
    model = gpt2.load_gpt2(checkpoints["gpt2-xl"][0], attention_impl="ch3", context_length=64)
    cfg = model.cfg
    assert (cfg.emb_dim, cfg.n_heads, cfg.n_layers, cfg.vocab_size) == (1600, 25, 1, 50257)
    assert cfg.context_length == 64 and model.pos_emb.weight.shape == (64, 1600)
    assert all(not b.is_meta for b in model.buffers()) and not any(p.is_meta for p in model.parameters())
    with pytest.raises(ValueError, match="n_layers"):
        gpt2.load_gpt2(checkpoints["gpt2-xl"][0], n_layers=48)


def write_header_only(path, shapes: dict[str, tuple], prefix="transformer."):
    """A safetensors file with the given float32 shapes whose data is a sparse hole: full-size GPT-2
    checkpoints for the error paths, at no disk or time cost (written from the format spec, not our writer)."""
    header, offset = {}, 0
    for name, shape in shapes.items():
        n = int(np.prod(shape)) * 4
        header[prefix + name] = {"dtype": "F32", "shape": list(shape), "data_offsets": [offset, offset + n]}
        offset += n
    raw = json.dumps(header).encode()
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(raw)) + raw)
        f.truncate(8 + len(raw) + offset)
    return path


def full_size_shapes(name):
    from minigpt.model import GPTConfig
    from minigpt.model import MODEL_SIZES
    spec = MODEL_SIZES[name]
    cfg = GPTConfig(emb_dim=spec.emb_dim, n_layers=spec.n_layers, n_heads=spec.n_heads, tie_weights=True)
    return gpt2.expected_hf_shapes(cfg)


def test_wrong_size_checkpoint_says_which_size_it_fits(tmp_path):
    small = write_header_only(tmp_path / "model.safetensors", full_size_shapes("gpt2"))
    with pytest.raises(ValueError, match=r"it fits 'gpt2'.*not 'gpt2-medium'"):
        gpt2.load_gpt2("gpt2-medium", weights=small)
    # The right size loads: GPT-2 small has 124,439,808 parameters with the head tied (OpenAI's "124M").
    model = gpt2.load_gpt2("gpt2", weights=tmp_path)
    assert count_parameters(model) == 124_439_808


def test_missing_or_misshapen_tensor_is_named(tmp_path):
    shapes = full_size_shapes("gpt2")
    del shapes["h.3.mlp.c_fc.bias"]
    shapes["h.5.attn.c_proj.weight"] = (768, 700)
    write_header_only(tmp_path / "model.safetensors", shapes)
    with pytest.raises(ValueError) as err:
        gpt2.load_gpt2(tmp_path)
    assert "h.3.mlp.c_fc.bias: missing" in str(err.value)
    assert "h.5.attn.c_proj.weight: shape (768, 700), expected (768, 768)" in str(err.value)


def test_keys_without_prefix_and_mask_buffers_load_the_same(checkpoints, tmp_path):
    # The original openai-community upload has no "transformer." prefix and carries attention-mask buffers.
    directory, _ = checkpoints["gpt2"]
    tensors = {k.removeprefix("transformer."): v for k, v in safetensors.torch.load_file(
        directory / "model.safetensors").items()}
    tensors["h.0.attn.bias"] = torch.tril(torch.ones(1, 1, 1024, 1024))
    safetensors.torch.save_file(tensors, tmp_path / "plain.safetensors")
    a = gpt2.load_gpt2(directory)
    b = gpt2.load_gpt2(tmp_path / "plain.safetensors")   # no config.json beside it: heads from the size table
    for (name, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), name


def test_offline_error_names_file_url_and_local_option(tmp_path, monkeypatch):
    monkeypatch.setenv("MINIGPT_CACHE", str(tmp_path))

    def no_network(*args, **kwargs):
        raise urllib.error.URLError("no network in this test")

    monkeypatch.setattr(urllib.request, "urlopen", no_network)
    with pytest.raises(RuntimeError) as err:
        gpt2.load_gpt2("gpt2-medium")
    message = str(err.value)
    assert "model.safetensors" in message
    assert "https://huggingface.co/openai-community/gpt2-medium/" in message
    assert "--weights" in message and "load_gpt2(" in message


# ---- exporting ---------------------------------------------------------------------------------------

def test_export_then_load_is_the_identity_and_transformers_reads_it(checkpoints, tmp_path):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory)
    gpt2.export_gpt2(model, tmp_path / "export")
    again = gpt2.load_gpt2(tmp_path / "export")
    assert again.state_dict().keys() == model.state_dict().keys()
    for name, p in model.state_dict().items():
        assert torch.equal(again.state_dict()[name], p), name
    # The exported file holds exactly the original tensors, under the same names.
    original = safetensors.torch.load_file(directory / "model.safetensors")
    exported = safetensors.torch.load_file(tmp_path / "export" / "model.safetensors")
    assert exported.keys() == original.keys()
    assert all(torch.equal(exported[k], original[k]) for k in original)
    reloaded = transformers.GPT2LMHeadModel.from_pretrained(tmp_path / "export").eval()
    ids = tokens(seed=5)
    with torch.no_grad():
        torch.testing.assert_close(reloaded(ids).logits, reference(ids).logits, atol=0, rtol=0)


@pytest.mark.gpu
def test_loads_onto_cuda_in_bf16(checkpoints):
    directory, reference = checkpoints["gpt2"]
    model = gpt2.load_gpt2(directory, device="cuda")
    ids = tokens()
    with torch.no_grad():
        # TF32 may be used for float32 matmuls on the GPU (~1e-3 relative); logits are O(10).
        torch.testing.assert_close(model(ids.cuda()).cpu(), reference(ids).logits, atol=5e-2, rtol=0)
    half = gpt2.load_gpt2(directory, dtype=torch.bfloat16, device="cuda")
    assert half.tok_emb.weight.device.type == "cuda" and half.tok_emb.weight.dtype == torch.bfloat16
    assert all(b.device.type == "cuda" for b in half.buffers())
