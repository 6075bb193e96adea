"""Evaluation: what an ablation does to a model's answers.

Generation (:mod:`.generation`), judges (:mod:`.judges`, :mod:`.classifiers`), the attack
success rate (:mod:`.asr`), side effects on harmless prompts (:mod:`.side_effects`), and
the ablation baked into a Hugging Face checkpoint (:mod:`.export`).
"""
