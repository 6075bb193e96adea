"""Loading: the bundled model offline and from its cache, cache repair, hub ids offline,
dtype, and the ablation equivalences on the real bundled model."""

import time

import pytest
import torch
from conftest import HARMFUL, hf_logprobs

from safety_heads import Ablation, ModelLoadError, ablate_weights, load_model
from safety_heads.method.forward import next_token_logprobs
from safety_heads.models import cache as cache_module
from safety_heads.models import chat_model as models_module
from safety_heads.organisms.loading import organism_source


def test_bundled_model_loads_offline(bundled):
    assert (bundled.n_layers, bundled.n_heads, bundled.n_kv_heads, bundled.d_head) == (30, 9, 3, 64)
    assert bundled.chat_format == "tokenizer"
    assert bundled.dtype == torch.float32
    assert str(models_module.cache_dir()) in bundled.source


def test_second_load_uses_the_cache(bundled, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("the cache should have been used")

    monkeypatch.setattr(cache_module, "_dequantise", no_conversion)
    start = time.perf_counter()
    again = load_model("smollm2-135m-instruct")
    assert time.perf_counter() - start < 15
    assert again.n_layers == 30


def test_dtype_is_honoured(bundled_folder):
    half = load_model(bundled_folder, dtype="bfloat16")
    assert half.dtype == torch.bfloat16
    with pytest.raises(ValueError, match="dtype"):
        load_model(bundled_folder, dtype="float8")


@pytest.fixture
def fake_gguf(tmp_path, monkeypatch, tiny):
    """A .gguf path whose 'dequantisation' writes the tiny model; counts conversions."""
    monkeypatch.setenv("SAFETY_HEADS_CACHE", str(tmp_path / "cache"))
    calls = []

    def dequantise(gguf, folder):
        calls.append(folder)
        tiny.pristine.save_pretrained(str(folder))
        tiny.model.tokenizer.save_pretrained(str(folder))

    monkeypatch.setattr(cache_module, "_dequantise", dequantise)
    path = tmp_path / "toy.gguf"
    path.write_bytes(b"GGUF-stand-in")
    return path, calls


def _cached_folder(tmp_path):
    (folder,) = (tmp_path / "cache" / "models").iterdir()
    return folder


def test_gguf_path_converts_once(fake_gguf, tmp_path):
    path, calls = fake_gguf
    first = load_model(path)
    second = load_model(path)
    assert len(calls) == 1
    assert first.n_layers == second.n_layers == 4


def test_corrupt_cache_is_rebuilt(fake_gguf, tmp_path, caplog):
    path, calls = fake_gguf
    load_model(path)
    weights = _cached_folder(tmp_path) / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with caplog.at_level("WARNING", logger="safety_heads.models.chat_model"):
        model = load_model(path)
    assert len(calls) == 2
    assert "is incomplete or corrupt; rebuilding it" in caplog.text
    assert model.n_layers == 4
    assert cache_module.cache_is_valid(
        _cached_folder(tmp_path), cache_module._gguf_source_key(path)
    )


def test_cache_of_changed_source_is_rebuilt_as_stale(fake_gguf, tmp_path, caplog):
    path, calls = fake_gguf
    load_model(path)
    path.write_bytes(b"GGUF-stand-in, re-released")  # same name, other weights
    with caplog.at_level("WARNING", logger="safety_heads.models.chat_model"):
        load_model(path)
    assert len(calls) == 2
    assert "is stale: built from other weights" in caplog.text
    assert "corrupt" not in caplog.text


@pytest.mark.parametrize("damage", ["truncate", "drop_manifest", "drop_config"])
def test_half_written_cache_is_rebuilt(fake_gguf, tmp_path, damage):
    path, calls = fake_gguf
    load_model(path)
    folder = _cached_folder(tmp_path)
    if damage == "truncate":
        weights = folder / "model.safetensors"
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "drop_manifest":
        (folder / cache_module.MANIFEST).unlink()
    else:
        (folder / "config.json").unlink()
    assert load_model(path).n_layers == 4
    assert len(calls) == 2


def test_changed_gguf_file_is_reconverted(fake_gguf):
    path, calls = fake_gguf
    load_model(path)
    path.write_bytes(b"GGUF-stand-in, a newer version")
    load_model(path)
    assert len(calls) == 2


def test_hub_id_offline_fails_fast_and_names_bundled_models():
    start = time.perf_counter()
    with pytest.raises(ModelLoadError, match="smollm2-135m-instruct") as error:
        load_model("meta-llama/Llama-2-7b-chat-hf")
    assert time.perf_counter() - start < 5
    assert "network" in str(error.value)


def test_nonsense_spec_is_explained(tmp_path):
    with pytest.raises(ModelLoadError, match="not a bundled model"):
        load_model("no such model")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_model(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        load_model(tmp_path / "missing.gguf")


@pytest.fixture(scope="module")
def bundled_pristine(bundled):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(bundled.source, attn_implementation="eager").eval()


def test_bundled_ablations_match_weight_surgery(bundled, bundled_pristine):
    batch = bundled.encode(HARMFUL, template="chat")
    heads = ["8.2", "15.6", "21.4"]
    base = next_token_logprobs(bundled, batch)
    assert (base - hf_logprobs(bundled_pristine, batch)).abs().max() < 1e-4
    by_query = next_token_logprobs(bundled, batch, Ablation.of(heads))
    by_pattern = next_token_logprobs(bundled, batch, Ablation.of(heads, via="pattern"))
    assert (by_query - base).abs().max() > 1e-2
    assert (by_query - by_pattern).abs().max() < 1e-3
    surgery = hf_logprobs(ablate_weights(bundled_pristine, Ablation.of(heads)), batch)
    assert (by_query - surgery).abs().max() < 1e-4
    scaled = next_token_logprobs(bundled, batch, Ablation.of(heads, "scale"))
    surgery = hf_logprobs(ablate_weights(bundled_pristine, Ablation.of(heads, "scale")), batch)
    assert (scaled - surgery).abs().max() < 1e-4


def test_bundled_left_padding_matches_single_prompts(bundled):
    batch = bundled.encode(HARMFUL, template="query")
    assert batch.attention_mask.min() == 0
    ablation = Ablation.of(["8.2"])
    together = next_token_logprobs(bundled, batch, ablation)
    for row, query in enumerate(HARMFUL):
        alone = next_token_logprobs(bundled, bundled.encode([query], template="query"), ablation)
        assert (together[row] - alone[0]).abs().max() < 1e-4


def test_touched_or_moved_sources_keep_their_cache(fake_gguf, tmp_path, monkeypatch):
    """The cache key names a file's content, not its place or time: a reinstalled wheel
    (new mtime) or a cache folder moved elsewhere is not rebuilt."""
    import os
    import shutil

    path, calls = fake_gguf
    load_model(path)
    os.utime(path, ns=(1, 1))
    load_model(path)
    moved = tmp_path / "moved-cache"
    shutil.move(tmp_path / "cache", moved)
    monkeypatch.setenv("SAFETY_HEADS_CACHE", str(moved))
    load_model(path)
    assert len(calls) == 1


def test_organism_cache_key_holds_no_path(tmp_path, tiny):
    import shutil

    first = tmp_path / "one" / "base"
    tiny.pristine.save_pretrained(str(first))
    cache_module._write_manifest(first, {"test": 1})
    second = tmp_path / "two" / "base"
    shutil.copytree(first, second)
    weights = tmp_path / "organism.safetensors"
    weights.write_bytes(b"organism weights")
    a = organism_source("x", weights, first)
    b = organism_source("x", weights, second)
    assert a == b and str(tmp_path) not in str(a)
    (second / "model.safetensors").write_bytes(b"other base weights")
    cache_module._write_manifest(second, {"test": 1})
    assert organism_source("x", weights, second) != a


def test_abandoned_build_folders_are_removed_and_running_ones_kept(fake_gguf, tmp_path):
    import os
    import subprocess
    import sys

    path, calls = fake_gguf
    load_model(path)
    target = _cached_folder(tmp_path)
    ended = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    prefix = f".{target.name}-build-{cache_module._HOST}"
    dead = target.parent / f"{prefix}-{int(ended.stdout)}-abc"
    alive = target.parent / f"{prefix}-{os.getpid()}-def"
    elsewhere = target.parent / f".{target.name}-build-otherhost-{int(ended.stdout)}-ghi"
    for folder in (dead, alive, elsewhere):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half written")
    load_model(path)
    assert not dead.exists() and alive.exists() and elsewhere.exists()
    assert len(calls) == 1
