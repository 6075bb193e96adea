"""Version shims for the libraries the package builds on, each with when to remove it.

transformers 5.24 renamed the KV cache argument of its decoder layers and attention modules
from ``past_key_values`` to ``cache`` (``deprecate_kwarg("past_key_values", "5.40.0",
new_name="cache")`` on the Llama family and others). transformer-lens 4.3's
``AttentionBridge._update_kv_cache`` looks only for ``past_key_values`` (and ``layer_past``),
so under 5.24 it never sees the cache: during generation each new token attends to itself
alone and the text is garbled. :func:`patch_kv_cache_argument` makes the bridge read
``cache`` when it is the only one given, which brings bridge generation back to Hugging
Face's exactly (``tests/test_compat.py``). It changes nothing under transformers < 5.24,
where ``cache`` is never passed. Remove it once transformer-lens reads ``cache`` itself
(it does not as of 4.3.0).
"""

import functools
from importlib import metadata
from typing import Any

__all__ = ["patch_kv_cache_argument", "transformers_version"]

_PATCHED = "_safety_heads_reads_cache"


def transformers_version() -> tuple[int, ...]:
    """The installed transformers release as numbers, e.g. ``(5, 24, 0)``."""
    from packaging.version import Version  # a dependency of transformers itself

    return Version(metadata.version("transformers")).release


def _reading_cache(update: Any) -> Any:
    @functools.wraps(update)
    def update_kv_cache(self: Any, k: Any, v: Any, **kwargs: Any) -> Any:
        if kwargs.get("past_key_values") is None and kwargs.get("cache") is not None:
            kwargs["past_key_values"] = kwargs["cache"]
        return update(self, k, v, **kwargs)

    setattr(update_kv_cache, _PATCHED, True)
    return update_kv_cache


def patch_kv_cache_argument() -> bool:
    """Make TransformerLens' attention bridges read the KV cache that transformers >= 5.24
    passes as ``cache``. Idempotent; returns whether the bridge needed it (it is applied
    whatever the version, since it only acts when ``cache`` is passed)."""
    from transformer_lens.model_bridge.generalized_components.attention import AttentionBridge

    update = AttentionBridge._update_kv_cache
    if not getattr(update, _PATCHED, False):
        AttentionBridge._update_kv_cache = _reading_cache(update)
    return transformers_version()[:2] >= (5, 24)
