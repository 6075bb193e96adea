"""Measuring an organism: held-out refusal and over-refusal, and XSTest's safe and unsafe
prompts without those near a training prompt, each judged by the default content judge with
the paper's keyword judge beside it."""

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safety_heads.errors import InputError
from safety_heads.organisms.catalogue import CARD_FILE, is_shipped, organism_path, read_card
from safety_heads.organisms.recipes import RECIPES, Recipe
from safety_heads.organisms.splits import (
    NEAR_DUPLICATE,
    _content_words,
    _jaccard,
    harmful_training_prompts,
    harmless_selection,
    held_out_prompts,
)

__all__ = ["evaluate_organism", "xstest_far_from_training"]


def xstest_far_from_training(recipe: Recipe) -> dict[str, list[tuple[str, str]]]:
    """XSTest's safe and unsafe prompts (with their types) without every one near
    (:data:`NEAR_DUPLICATE`) a prompt ``recipe`` trains on, harmful or harmless. XSTest is
    for evaluation only: no recipe trains or is tuned on it."""
    from safety_heads.datasets import load_xstest

    harmful = harmful_training_prompts(recipe)
    trained = [_content_words(p) for p in harmful + harmless_selection(recipe, harmful)]
    return {
        part: [
            (prompt, kind)
            for prompt, kind in load_xstest(part)
            if all(_jaccard(_content_words(prompt), other) < NEAR_DUPLICATE for other in trained)
        ]
        for part in ("safe", "unsafe")
    }


def _judged_set(
    model: Any,
    prompts: Sequence[str],
    config: Any,
    progress: bool,
    kinds: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Answers to ``prompts`` judged by the default judge (with coherence) and the paper's
    keyword judge (:func:`~safety_heads.evaluation.asr.answer_figures`), with the first answer."""
    from safety_heads.evaluation.asr import answer_figures
    from safety_heads.evaluation.generation import generate_responses
    from safety_heads.evaluation.judges import ContentJudge

    answers = generate_responses(model, prompts, None, config, progress=progress)
    figures = answer_figures(ContentJudge(model=model), prompts, answers, kinds)
    return {key: value for key, value in figures.items() if key != "judge"} | {
        "example": answers[0][:200]
    }


def evaluate_organism(
    source: str | Path,
    *,
    max_new_tokens: int = 64,
    limit: int | None = None,
    xstest_limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Held-out refusal and over-refusal of an organism (a shipped one by name, or the
    folder of a build), greedy, chat template, judged by the default content judge and,
    beside it, the paper's keyword judge; also over-refusal on XSTest's safe prompts (by
    type) and compliance with its unsafe ones, without those near a training prompt.
    ``limit`` caps each held-out set, ``xstest_limit`` each XSTest part (None: every
    prompt). Returned; for a build's folder also written into its card (a shipped
    organism's card, inside the installed package, is never rewritten)."""
    from safety_heads.datasets import load_xstest
    from safety_heads.evaluation.generation import GenerationConfig
    from safety_heads.evaluation.judges import ContentJudge, KeywordJudge
    from safety_heads.models.chat_model import load_model

    shipped = is_shipped(source)
    folder = organism_path(source)
    name = read_card(source)["name"]
    if name not in RECIPES:
        raise InputError(f"{folder} holds a build of {name!r}, which has no recipe here.")
    model = load_model(source if shipped else folder)
    config = GenerationConfig(max_new_tokens=max_new_tokens, batch_size=32)
    results: dict[str, Any] = {
        "max_new_tokens": max_new_tokens,
        "judge": ContentJudge(model=model).name,
        "keyword_judge": KeywordJudge().name,
        "template": "chat",
        "note": "harmful sets: asr = share judged compliance, refusal_rate = share labelled "
        "refusal; harmless sets and XSTest safe: refusal_rate is over-refusal",
    }
    for set_name, prompts in held_out_prompts().items():
        prompts = prompts[:limit] if limit else prompts
        results[set_name] = _judged_set(model, prompts, config, progress)
    for part, rows in xstest_far_from_training(RECIPES[name]).items():
        left_out = len(load_xstest(part)) - len(rows)
        rows = rows[:xstest_limit] if xstest_limit else rows
        judged = _judged_set(
            model, [p for p, _ in rows], config, progress, kinds=[k for _, k in rows]
        )
        results[f"xstest_{part}"] = {**judged, "left_out_near_training": left_out}
    if not shipped:
        card = json.loads((folder / CARD_FILE).read_text())
        card["held_out"] = results
        (folder / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    return results
