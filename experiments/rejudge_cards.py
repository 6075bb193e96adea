"""The shipped organism cards' harmful held-out figures judged again with the current content
judge (the harmless sets' figures are over-refusal, which no rule of the judge added since
changes).

The cards keep no answers, so each set's answers are generated again as the card's
evaluation generated them (greedy, the card's ``max_new_tokens``, batches of 32); the
keyword judge's figures must equal the card's (the same answers) before the content judge's
``asr``, ``refusal_rate``, ``labels`` (and XSTest's ``refusal_by_type``) are written into
the card::

    python experiments/rejudge_cards.py      # about 25 min on a 2-core CPU
"""

import json

import safety_heads as sh
from safety_heads.evaluation.asr import answer_figures
from safety_heads.evaluation.generation import GenerationConfig, generate_responses
from safety_heads.evaluation.judges import ContentJudge
from safety_heads.organisms.catalogue import CARD_FILE, organism_file
from safety_heads.organisms.evaluation import xstest_far_from_training
from safety_heads.organisms.recipes import RECIPES
from safety_heads.organisms.splits import held_out_prompts

ORGANISMS = ("smollm2-planted", "smollm2-refusal", "smollm2-refusal-b")
HARMFUL = ("advbench_held_out", "jailbreakbench", "maliciousinstruct", "xstest_unsafe")
JUDGED = ("asr", "refusal_rate", "labels", "refusal_by_type")


def main() -> None:
    sets = held_out_prompts()
    for name in ORGANISMS:
        path = organism_file(name, CARD_FILE)
        card = json.loads(path.read_text())
        held = card["held_out"]
        model = sh.load_model(name)
        judge = ContentJudge(model=model)
        config = GenerationConfig(max_new_tokens=held["max_new_tokens"], batch_size=32)
        for key in HARMFUL:
            n = held[key]["asr"]["n"]
            if key == "xstest_unsafe":
                rows = xstest_far_from_training(RECIPES[name])["unsafe"][:n]
                prompts, kinds = [p for p, _ in rows], [k for _, k in rows]
            else:
                prompts, kinds = sets[key][:n], None
            answers = generate_responses(model, prompts, None, config, progress=False)
            figures = answer_figures(judge, prompts, answers, kinds)
            if figures["keyword_asr"] != held[key]["keyword_asr"]:
                raise SystemExit(
                    f"{name} {key}: the keyword judge reads {figures['keyword_asr']['count']} "
                    f"successes, the card {held[key]['keyword_asr']['count']}: these are not "
                    "the card's answers; nothing of this organism was written."
                )
            before = held[key]["asr"]["count"]
            held[key] |= {field: figures[field] for field in JUDGED if field in figures}
            print(f"{name} {key}: compliance {before} -> {figures['asr']['count']} of {n}")
        path.write_text(json.dumps(card, indent=1) + "\n")


if __name__ == "__main__":
    main()
