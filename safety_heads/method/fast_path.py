"""The fast path behind Ships and Sahara: cached residuals, layer suffixes, batched ablations,
with its settings (:class:`ScoreSettings`) and the per-layer passes Ships and Sahara call
(:func:`build_groups`, :func:`layer_hidden`).

Scoring a head means comparing the model with and without that head. Two facts make it
cheap:

1. Ablating a head in layer ``l`` cannot change anything before layer ``l``. So the
   residual stream entering every layer is cached once per prompt group (with any fixed
   heads already ablated), and each ablated pass runs only layers ``l .. L-1`` from the
   cached residual.
2. Ablations of different heads are independent. One pass stacks many (head, prompt) rows
   along the batch axis; a single hook per layer ablates a different head in each row
   (``safety_heads.method.ablation`` hooks take a ``[rows, n_layers, n_heads]`` mask).

Only the final-norm hidden state of the last position is kept (Generalized Ships needs
nothing else); Ships applies the unembedding to that one position instead of to every
position. Rows per pass are bounded by a token budget (rows x prompt width), which bounds
memory (:func:`batch_budget`: from the memory free unless set).

The suffix runs through the wrapped Hugging Face decoder with its layer list temporarily
cut to ``layers[l:]``: hook names keep their global layer index, rotary embeddings are
built by the model's own code, and the result equals a full forward pass to float rounding
(the test suite checks it against the one-pass-per-head loop of
:mod:`safety_heads.method.per_head_loop`).

Two more savings:

3. Shared openings. Chat-formatted prompts start with the same tokens (the template's
   system prompt is often more than half of each prompt). Under causal attention those
   positions never see what follows, so for a given ablation their hidden states, keys and
   values are the same in every prompt. When a group's prompts share an opening of ``P``
   tokens (:func:`shared_opening_length`), the opening is run once per distinct ablation
   (one row, not one row per prompt), its keys and values are recorded in every layer, and
   the prompt-specific remainders run on their own, attending to the opening's keys and
   values repeated along the batch to the rows that share that ablation. Layout of a
   remainder row: ``[opening | padding | remainder]`` as keys, ``[padding | remainder]``
   as queries, with the prompt's own position ids (``P, P+1, ...`` for the remainder) and
   an explicit 4-D mask (every opening key visible, remainder keys causal and unpadded).
4. The last layer's MLP runs on the last position only: nothing reads the others.
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Bool, Float, Int
from torch import Tensor

from safety_heads.errors import InputError
from safety_heads.method.ablation import AblationMethod, ablation_hooks, query_hook
from safety_heads.method.forward import unembed_float32
from safety_heads.models.interface import HookedChatModel
from safety_heads.models.prompts import TokenBatch, encode_prompts

__all__ = [
    "ScoreSettings",
    "PromptGroup",
    "prompt_groups",
    "shared_opening_length",
    "cache_group",
    "suffix_hidden",
    "unembed_logprobs",
    "kl_rows",
    "run_layers",
    "build_groups",
    "group_hidden",
    "layer_hidden",
    "batch_budget",
]


@dataclass
class PromptGroup:
    """Prompts of similar length encoded together, with their cached residual streams.

    ``index`` holds the positions of these prompts in the caller's prompt list.
    ``resid_pre[l]`` is the residual stream entering layer ``l``; ``hidden`` the final-norm
    hidden state at the last position; both with the group's fixed heads ablated.
    ``shared`` is the length of the opening all its prompts share
    (:func:`shared_opening_length`; 0 for a model with a sliding window shorter than the
    prompts).
    """

    index: Int[Tensor, " group"]
    batch: TokenBatch
    resid_pre: list[Tensor]
    hidden: Float[Tensor, "group d_model"]
    shared: int = 0


def prompt_groups(
    tokenizer: Any, texts: Sequence[str], max_prompts: int
) -> list[tuple[list[int], TokenBatch]]:
    """Split formatted prompts into length-sorted groups of at most ``max_prompts``.

    Sorting by token length keeps the padding of each group small.
    """
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: (lengths[i], i))
    groups = []
    for start in range(0, len(order), max_prompts):
        chosen = order[start : start + max_prompts]
        groups.append((chosen, encode_prompts(tokenizer, [texts[i] for i in chosen])))
    return groups


def shared_opening_length(batch: TokenBatch) -> int:
    """How many tokens every prompt of ``batch`` starts with (its longest common token
    prefix), capped so that every prompt keeps at least one token of its own.

    The cap matters: the last position of each prompt must be computed per prompt, since
    it is what gets scored. 0 when the prompts share nothing.
    """
    lengths = batch.attention_mask.sum(dim=-1)  # [batch]
    shortest = int(lengths.min())
    width = batch.input_ids.shape[1]
    # Left padding: prompt i starts at column width - lengths[i]; read every prompt's first
    # `shortest` tokens aligned on its start.
    offsets = torch.arange(shortest, device=lengths.device)
    columns = (width - lengths)[:, None] + offsets  # [batch, shortest]
    tokens = batch.input_ids.gather(1, columns)
    agree = (tokens == tokens[:1]).all(dim=0)  # [shortest]: same token in every prompt
    common = int(agree.long().cumprod(dim=0).sum())
    return min(common, shortest - 1)


def _sees_whole_prompts(model: HookedChatModel, width: int) -> bool:
    """Whether every layer attends to all of a ``width``-token prompt. A sliding window
    shorter than that would have to be part of the shared path's explicit mask, which does
    not model one; such groups keep the plain path (the decoder builds their masks)."""
    config = model.hf_model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    window = getattr(config, "sliding_window", None)
    return window is None or window >= width


def _decoder(model: HookedChatModel) -> Any:
    hf_model = model.hf_model
    return hf_model.get_decoder() if hasattr(hf_model, "get_decoder") else hf_model.model


def _layer_hooks(
    model: HookedChatModel,
    mask: Bool[Tensor, "rows n_layers n_heads"],
    first_layer: int,
    method: AblationMethod,
) -> list:
    """Ablation hooks for layers ``first_layer`` on (earlier layers do not run)."""
    trimmed = mask.clone()
    trimmed[:, :first_layer] = False
    return ablation_hooks(trimmed, method, query_hook(model, method.kind))


def _last_position_hook(n_layers: int) -> tuple[str, Any]:
    """A hook that feeds the last layer's MLP the last position only.

    Only the last position's final hidden state is read, and in the last layer nothing
    after the MLP mixes positions. The block adds the MLP output ``[rows, 1, d_model]`` to
    its residual ``[rows, pos, d_model]`` by broadcasting, so every position comes out
    with the last position's MLP output: wrong for the others, which nobody reads.
    """

    def keep_last(hidden: Float[Tensor, "rows pos d_model"], *, hook: Any) -> Tensor:
        return hidden[:, -1:]

    return (f"blocks.{n_layers - 1}.mlp.hook_in", keep_last)


def _additive_mask(
    visible: Bool[Tensor, "rows q_pos k_pos"], dtype: torch.dtype
) -> Float[Tensor, "rows 1 q_pos k_pos"]:
    """The eager-attention mask Hugging Face builds: 0 where visible, the dtype's minimum
    where not. A 4-D mask is used as it is by both the decoder and the bridge."""
    seen = torch.zeros((), dtype=dtype, device=visible.device)
    blocked = torch.full((), torch.finfo(dtype).min, dtype=dtype, device=visible.device)
    return torch.where(visible, seen, blocked)[:, None]


class _OpeningKeysValues:
    """Stands in for the KV cache: records the opening's keys and values, then prepends them.

    The bridge's attention calls ``update(keys, values, layer_index)`` after the rotary
    embedding and attends to what it returns; nothing else of a cache is used once the
    decoder receives a 4-D mask and explicit position ids. While ``rows`` is None (the
    opening pass) each layer's keys and values ``[distinct, n_kv_heads, P, d_head]`` are
    kept. With ``rows`` set (the remainder pass; row ``r`` shares the ablation of opening
    row ``rows[r]``) the opening's are repeated to those rows and put in front of the
    remainder's. Nothing is stored then, so one layer's repeated copy lives at a time.
    """

    def __init__(self) -> None:
        self.keys: dict[int, Tensor] = {}
        self.values: dict[int, Tensor] = {}
        self.rows: Tensor | None = None

    def update(self, keys: Tensor, values: Tensor, layer_index: int) -> tuple[Tensor, Tensor]:
        if self.rows is None:
            self.keys[layer_index], self.values[layer_index] = keys, values
            return keys, values
        return (
            torch.cat([self.keys[layer_index][self.rows], keys], dim=-2),
            torch.cat([self.values[layer_index][self.rows], values], dim=-2),
        )


def run_layers(
    model: HookedChatModel,
    first_layer: int,
    hidden: Float[Tensor, "rows pos d_model"],
    attention_mask: Tensor,
    position_ids: Int[Tensor, "rows pos"],
    hooks: list,
    past: _OpeningKeysValues | None = None,
) -> Float[Tensor, "rows d_model"]:
    """Run layers ``first_layer..L-1`` and the final norm on ``hidden`` with ``hooks``;
    return the last position. ``attention_mask`` is 2-D (padding; the decoder adds the
    causal part) or a ready 4-D additive mask."""
    decoder = _decoder(model)
    layers = decoder.layers
    hooks = [*hooks, _last_position_hook(model.n_layers)]
    with model.bridge.hooks(fwd_hooks=hooks):
        decoder.layers = torch.nn.ModuleList(list(layers)[first_layer:])
        try:
            output = decoder(
                inputs_embeds=hidden,
                attention_mask=attention_mask,
                position_ids=position_ids,
                past_key_values=past,
                use_cache=False,
            )
        finally:
            decoder.layers = layers
    return output.last_hidden_state[:, -1]


@torch.no_grad()
def cache_group(
    model: HookedChatModel,
    index: Sequence[int],
    batch: TokenBatch,
    fixed: Bool[Tensor, "n_layers n_heads"],
    method: AblationMethod,
) -> PromptGroup:
    """One full pass over ``batch`` with the ``fixed`` heads ablated, caching residuals."""
    batch = batch.to(model.device)
    residuals: dict[int, Tensor] = {}

    def keep(layer: int):
        def hook(resid: Tensor, *, hook: Any) -> Tensor:
            residuals[layer] = resid.detach()
            return resid

        return hook

    hooks = [(f"blocks.{layer}.hook_resid_pre", keep(layer)) for layer in range(model.n_layers)]
    if bool(fixed.any()):
        hooks += ablation_hooks(fixed, method, query_hook(model, method.kind))
    with model.bridge.hooks(fwd_hooks=hooks):
        output = _decoder(model)(
            input_ids=batch.input_ids,
            attention_mask=batch.attention_mask,
            position_ids=batch.position_ids,
            use_cache=False,
        )
    hidden = output.last_hidden_state[:, -1]
    resid_pre = [residuals[layer] for layer in range(model.n_layers)]
    width = batch.input_ids.shape[1]
    shared = shared_opening_length(batch) if _sees_whole_prompts(model, width) else 0
    return PromptGroup(torch.as_tensor(list(index)), batch, resid_pre, hidden, shared)


@torch.no_grad()
def suffix_hidden(
    model: HookedChatModel,
    group: PromptGroup,
    layer: int,
    rows: Int[Tensor, " rows"],
    mask: Bool[Tensor, "rows n_layers n_heads"],
    method: AblationMethod,
    opening: int = 0,
) -> Float[Tensor, "rows d_model"]:
    """Final-norm last-position hidden states of ``rows`` (prompt indices within the
    group), running layers ``layer..L-1`` from the cache with ``mask[i]`` ablated in row i.

    ``mask`` must include the group's fixed heads (for layers from ``layer`` on).
    ``opening`` > 0 runs the first ``opening`` tokens, which all the group's prompts share,
    once per distinct ablation instead of once per row (at most ``group.shared``).
    """
    if not 0 <= opening <= group.shared:
        raise InputError(
            f"opening={opening} must be between 0 and the group's shared opening "
            f"({group.shared}); see PromptGroup.shared."
        )
    rows = rows.to(group.batch.input_ids.device)
    if opening == 0:
        return run_layers(
            model,
            layer,
            group.resid_pre[layer][rows],
            group.batch.attention_mask[rows],
            group.batch.position_ids[rows],
            _layer_hooks(model, mask, layer, method),
        )
    return _shared_opening_hidden(model, group, layer, rows, mask, method, opening)


def _shared_opening_hidden(
    model: HookedChatModel,
    group: PromptGroup,
    layer: int,
    rows: Int[Tensor, " rows"],
    mask: Bool[Tensor, "rows n_layers n_heads"],
    method: AblationMethod,
    opening: int,
) -> Float[Tensor, "rows d_model"]:
    """:func:`suffix_hidden` in two passes: the shared opening once per distinct ablation,
    then the remainders attending to the opening's keys and values."""
    resid = group.resid_pre[layer]
    device, dtype = resid.device, resid.dtype
    width = resid.shape[1]
    # Rows whose ablations agree from `layer` on (earlier layers do not run) share an
    # opening; `owner[r]` is row r's opening row.
    distinct, owner = torch.unique(mask[:, layer:].flatten(1).byte(), dim=0, return_inverse=True)
    opening_mask = torch.zeros(len(distinct), *mask.shape[1:], dtype=torch.bool)
    opening_mask[:, layer:] = distinct.bool().view(len(distinct), -1, mask.shape[2])
    past = _OpeningKeysValues()

    # Opening pass: the opening is the same in every prompt, so read it from a prompt that
    # fills the whole width (no padding); positions 0..P-1, plain causal attention.
    unpadded = int(group.batch.attention_mask[:, 0].argmax())
    causal = torch.ones(opening, opening, dtype=torch.bool, device=device).tril()
    run_layers(
        model,
        layer,
        resid[unpadded, :opening].expand(len(distinct), -1, -1),
        _additive_mask(causal.expand(len(distinct), -1, -1), dtype),
        torch.arange(opening, device=device).expand(len(distinct), -1),
        _layer_hooks(model, opening_mask, layer, method),
        past,
    )

    # Remainder pass: the last width - P columns of each prompt. Left padding puts prompt
    # i's remainder in the last lengths[i] - P of them; the columns before it (padding or
    # the end of the prompt's own opening) are hidden as keys and their outputs unused.
    remainder = width - opening
    lengths = group.batch.attention_mask[rows].sum(dim=-1)  # [rows]
    own = torch.arange(remainder, device=device) >= (width - lengths)[:, None]  # [rows, remainder]
    causal = torch.ones(remainder, remainder, dtype=torch.bool, device=device).tril()
    visible = torch.cat(
        [
            own.new_ones(len(rows), remainder, opening),  # every opening key
            own[:, None, :] & causal,  # the prompt's own earlier remainder keys
        ],
        dim=-1,
    )  # [rows, q_pos = remainder, k_pos = opening + remainder]
    past.rows = owner.to(device)
    return run_layers(
        model,
        layer,
        resid[rows, opening:],
        _additive_mask(visible, dtype),
        group.batch.position_ids[rows, opening:],  # the prompt's own positions: P, P+1, ...
        _layer_hooks(model, mask, layer, method),
        past,
    )


@torch.no_grad()
def unembed_logprobs(
    model: HookedChatModel, hidden: Float[Tensor, "rows d_model"]
) -> Float[Tensor, "rows d_vocab"]:
    """Next-token log-probabilities (float32, the output layer too) from final-norm hidden
    states."""
    return unembed_float32(model, hidden).log_softmax(dim=-1)


def kl_rows(
    base: Float[Tensor, "rows d_vocab"], changed: Float[Tensor, "rows d_vocab"]
) -> Float[Tensor, " rows"]:
    """KL(base || changed) per row, from log-probabilities."""
    return (base.exp() * (base - changed)).sum(dim=-1)


def row_chunks(n_rows: int, width: int, max_tokens: int) -> Iterator[slice]:
    """Slices of at most ``max_tokens // width`` rows (at least one)."""
    step = max(1, max_tokens // max(1, width))
    for start in range(0, n_rows, step):
        yield slice(start, min(start + step, n_rows))


@dataclass(frozen=True)
class ScoreSettings:
    """How heads are ablated while scoring (``method``), and how the work is batched.

    ``max_batch_tokens`` bounds one pass (rows x prompt width); ``max_group_prompts``
    bounds how many prompts share one residual cache. ``min_shared_tokens``: when the
    prompts of a group all start with the same tokens (a chat template's system prompt)
    and there are at least this many of them, that opening is run once per ablated head
    instead of once per (head, prompt) (see :mod:`safety_heads.method.fast_path`); ``None`` never
    shares, which is only useful to measure what sharing saves. None of the three changes
    the scores beyond float rounding; they trade memory or overhead for speed.
    """

    method: AblationMethod = AblationMethod()
    max_batch_tokens: int | None = None  # None: from the memory free now (batch_budget)
    max_group_prompts: int = 64
    min_shared_tokens: int | None = 8

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_group_prompts"):
            if getattr(self, name) is not None and getattr(self, name) < 1:
                raise InputError(f"{name} must be >= 1, got {getattr(self, name)}.")
        if self.min_shared_tokens is not None and self.min_shared_tokens < 1:
            raise InputError(
                f"min_shared_tokens must be >= 1, or None to never share an opening; "
                f"got {self.min_shared_tokens}."
            )

    def shared_opening(self, shared: int) -> int:
        """How many of a group's ``shared`` opening tokens to run once per ablation: all of
        them when there are enough, else none."""
        if self.min_shared_tokens is None or shared < self.min_shared_tokens:
            return 0
        return shared

    def provenance(self) -> dict[str, Any]:
        """The settings that change results (batching does not)."""
        method = self.method
        return {"ablation": method.kind, "epsilon": method.epsilon, "via": method.via}


def build_groups(
    model: HookedChatModel,
    texts: Sequence[str],
    fixed: Bool[Tensor, "n_layers n_heads"],
    settings: ScoreSettings,
) -> list[PromptGroup]:
    """Length-sorted prompt groups with residuals cached under the ``fixed`` ablation."""
    return [
        cache_group(model, index, batch, fixed, settings.method)
        for index, batch in prompt_groups(model.tokenizer, texts, settings.max_group_prompts)
    ]


def group_hidden(groups: Sequence[PromptGroup]) -> Float[Tensor, "prompts d_model"]:
    """The groups' cached last-position hidden states, in the caller's prompt order."""
    n = sum(len(g.index) for g in groups)
    first = groups[0].hidden
    out = torch.empty(n, first.shape[-1], dtype=first.dtype, device=first.device)
    for group in groups:
        out[group.index.to(first.device)] = group.hidden
    return out


CPU_BATCH_TOKENS = 4096  # larger passes gain nothing on a CPU; they only hold more memory
GPU_BATCH_TOKENS = 1 << 16


def free_memory(device: torch.device) -> int:
    """Bytes free for activations now: free GPU memory on CUDA, available RAM otherwise."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    try:
        with open("/proc/meminfo") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 4 << 30  # not Linux: assume 4 GiB


def batch_budget(model: HookedChatModel, width: int, share: float = 0.5) -> int:
    """Tokens (rows x prompt width) per layer-suffix pass that fit in ``share`` of the free
    memory (:func:`free_memory`), at most :data:`GPU_BATCH_TOKENS` on a GPU and
    :data:`CPU_BATCH_TOKENS` on a CPU. Per token, one layer holds about 8 hidden-sized
    vectors (residual, norm, queries, keys, values, attention output) and 3 MLP-sized ones
    in the model's dtype, and eager attention's scores and pattern, ``2 x n_heads x width``
    float32 numbers."""
    config = model.hf_model.config
    config = config.get_text_config() if hasattr(config, "get_text_config") else config
    d_model = config.hidden_size
    d_mlp = getattr(config, "intermediate_size", 4 * d_model) or 4 * d_model
    itemsize = torch.finfo(model.dtype).bits // 8 if model.dtype.is_floating_point else 4
    per_token = itemsize * (8 * d_model + 3 * d_mlp) + 4 * 2 * model.n_heads * max(1, width)
    device = model.device
    cap = GPU_BATCH_TOKENS if device.type == "cuda" else CPU_BATCH_TOKENS
    return max(width, min(cap, int(share * free_memory(device) / per_token)))


def layer_hidden(
    model: HookedChatModel,
    groups: Sequence[PromptGroup],
    layer: int,
    heads: Sequence[int],
    fixed: Bool[Tensor, "n_layers n_heads"],
    settings: ScoreSettings,
) -> Float[Tensor, "heads prompts d_model"]:
    """Last-position hidden states of every prompt with each of ``heads`` (of ``layer``)
    ablated on top of ``fixed``, computed on layer suffixes in batched passes."""
    n_prompts = sum(len(g.index) for g in groups)
    out: Tensor | None = None
    head_ids = torch.tensor(list(heads))
    for group in groups:
        size = len(group.index)
        # Row r ablates heads[r // size] for prompt r % size of this group.
        slot_of_row = torch.arange(len(heads)).repeat_interleave(size)
        prompt_of_row = torch.arange(size).repeat(len(heads))
        # Rows per pass are bounded by the full width even when the opening is shared: the
        # remainder rows still attend to (and hold keys for) every position.
        width = group.batch.input_ids.shape[1]
        opening = settings.shared_opening(group.shared)
        budget = settings.max_batch_tokens or batch_budget(model, width)
        for part in row_chunks(len(slot_of_row), width, budget):
            n_rows = part.stop - part.start
            mask = fixed.expand(n_rows, -1, -1).clone()
            mask[torch.arange(n_rows), layer, head_ids[slot_of_row[part]]] = True
            # Sharing pays only when several rows of this pass ablate the same head.
            shares = n_rows > len(slot_of_row[part].unique())
            hidden = suffix_hidden(
                model,
                group,
                layer,
                prompt_of_row[part],
                mask,
                settings.method,
                opening if shares else 0,
            )
            if out is None:
                out = hidden.new_empty(len(heads), n_prompts, hidden.shape[-1])
            targets = group.index[prompt_of_row[part]].to(hidden.device)
            out[slot_of_row[part].to(hidden.device), targets] = hidden
    assert out is not None
    return out
