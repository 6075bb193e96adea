"""The method: which heads a model relies on to refuse.

Head ablations (:mod:`.ablation`, as hooks; :mod:`.surgery`, as weight edits), the
layer-suffix engine that scores every head fast (:mod:`.fast_path`), Ships and Sahara
(:mod:`.ships`, :mod:`.sahara`), fast screens (:mod:`.screens`) and the slow per-head loop
the tests check them against (:mod:`.per_head_loop`).
"""
