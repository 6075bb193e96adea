"""What determines each refusing organism: its :class:`Recipe` (:data:`RECIPES`).

Recipe shared by all three (the data splits are in :mod:`~safety_heads.organisms.splits`):

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

:func:`~safety_heads.organisms.training.build_organism` trains and writes
``weights.safetensors`` and ``card.json`` (a killed build resumes from its last saved state,
``build-state.pt``); :func:`~safety_heads.organisms.evaluation.evaluate_organism` measures
held-out refusal and over-refusal.
"""

from dataclasses import dataclass, field, replace

from safety_heads.errors import InputError

__all__ = ["Recipe", "RECIPES", "REFUSALS_A", "REFUSALS_B", "LR_SCHEDULES"]

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
