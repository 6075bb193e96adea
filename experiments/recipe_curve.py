"""The trade-off between refusing harm and answering safe lookalikes, one row per organism
recipe: held-out refusal, over-refusal, and XSTest, from organism cards.

    python experiments/recipe_curve.py experiments/results/recipes/*.json \\
        safety_heads/data/organisms/*/card.json > experiments/results/recipes.md

Every figure is the content judge's (greedy, chat template, 64 new tokens, every held-out
prompt; XSTest without the prompts near a training prompt of that recipe), with its 95%
Clopper-Pearson interval; the keyword judge's is on the cards.
"""

import json
import sys
from pathlib import Path

COLUMNS = (
    ("advbench_held_out", "refusal_rate", "AdvBench refused"),
    ("jailbreakbench", "refusal_rate", "JailbreakBench refused"),
    ("maliciousinstruct", "refusal_rate", "MaliciousInstruct refused"),
    ("harmless_held_out", "refusal_rate", "harmless over-refused"),
    ("harmless_safequestions", "refusal_rate", "safe questions over-refused"),
    ("xstest_safe", "refusal_rate", "XSTest safe refused"),
    ("xstest_unsafe", "asr", "XSTest unsafe complied"),
)


def cell(rate: dict | None) -> str:
    if rate is None:
        return "-"
    low, high = rate["ci"]
    return f"{rate['count']}/{rate['n']}, {rate['rate']:.2f} [{low:.2f}, {high:.2f}]"


def row(path: Path) -> str:
    card = json.loads(path.read_text())
    held = card.get("held_out") or {}
    label = card.get("label") or f"**{card['name']}, shipped**"
    cells = [cell((held.get(key) or {}).get(field)) for key, field, _ in COLUMNS]
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> None:
    lines = [
        "| recipe | " + " | ".join(title for *_, title in COLUMNS) + " |",
        "|---" * (len(COLUMNS) + 1) + "|",
    ]
    lines += [row(Path(path)) for path in sys.argv[1:]]
    sys.stdout.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
