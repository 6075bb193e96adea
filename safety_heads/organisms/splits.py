"""The organisms' data: fixed splits of the bundled prompt sets, the held-out sets no
organism trains on, the nearness test that keeps training prompts away from evaluation
prompts, and the question forms that keep refusal from hinging on wording."""

import functools
import random
import re
from collections.abc import Sequence
from collections.abc import Set as AbstractSet

from safety_heads.datasets import load_prompts
from safety_heads.errors import InputError
from safety_heads.organisms.recipes import RECIPES, Recipe

__all__ = [
    "SPLIT_SEED",
    "HELD_OUT_HARMFUL",
    "HELD_OUT_HARMLESS",
    "NEAR_DUPLICATE",
    "advbench_split",
    "held_out_prompts",
    "prompt_similarity",
    "harmbench_split",
    "donotanswer_split",
    "writing_split",
    "lookalike_split",
    "safequestions_split",
    "SAFEQUESTIONS_HELD_OUT",
    "harmfulquestions_split",
    "harmful_training_prompts",
    "ask_as_questions",
    "ask_tasks_as_questions",
    "like_openings",
    "harmless_selection",
]

SPLIT_SEED = 0
HELD_OUT_HARMFUL = slice(400, 520)
HELD_OUT_HARMLESS = slice(900, 1000)


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
