"""``judge``: verdicts on (prompt, response) pairs from any source, without generating.

``safety-heads judge answers.jsonl --out verdicts.json`` reads a JSON Lines file with
``prompt`` and ``response`` fields (or the result JSON of ``safety-heads evaluate``) and
writes ``{"judge", "verdicts": [{"attack_success", "label", "reason"}, ...], "asr",
"asr_ci", "n", "labels", "keyword"}``: the chosen judge's verdicts, its attack success rate
with a 95% Clopper-Pearson interval and label counts, and the paper's keyword judge's
figures on the same answers. The default judge reads coherence with ``--model`` (the model
that wrote the answers, before any ablation); without it the coherence check is off and the
judge's name says so.
"""

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from safety_heads.cli.common import (
    Runner,
    add_judge_options,
    add_model_options,
    judge_from_args,
    load_from_args,
    print_json,
)
from safety_heads.errors import InputError


def register(subparsers) -> dict[str, Runner]:
    judge = subparsers.add_parser(
        "judge", help="judge (prompt, response) pairs from a file, without generating"
    )
    judge.add_argument(
        "file", help="JSON Lines file with prompt and response fields, or an evaluate result"
    )
    judge.add_argument("--out", required=True, help="verdicts JSON to write")
    judge.add_argument(
        "--overwrite",
        action="store_true",
        help="replace --out if it is an earlier verdicts file (never any other file)",
    )
    add_judge_options(judge)
    add_model_options(judge)
    judge.set_defaults(model=None)
    judge.add_argument(
        "--template",
        default="chat",
        choices=["chat", "query", "direct"],
        help="prompt format the answers were generated with, for the coherence check "
        "(default: %(default)s)",
    )
    judge.add_argument("--system", default=None, help="system prompt they were generated with")
    return {"judge": run_judge}


def _pairs_from_jsonl(path: Path, text: str) -> list[tuple[str, str]]:
    pairs = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as error:
            raise InputError(f"{path}, line {number}: not JSON ({error.msg}).") from error
        if not isinstance(record, dict) or not all(
            isinstance(record.get(key), str) for key in ("prompt", "response")
        ):
            raise InputError(
                f'{path}, line {number}: needs string fields "prompt" and "response", got '
                f"{str(record)[:80]}."
            )
        pairs.append((record["prompt"], record["response"]))
    return pairs


def read_pairs(path: Path) -> list[tuple[str, str]]:
    """(prompt, response) pairs of a JSON Lines file or of an ``evaluate`` result."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except OSError as error:
        raise InputError(f"Cannot read {path}: {error.strerror or error}.") from error
    except UnicodeDecodeError as error:
        raise InputError(f"{path} is not UTF-8 text; re-save it as UTF-8.") from error
    try:
        data: Any = json.loads(text)
    except json.JSONDecodeError:
        data = None  # JSON Lines (or not JSON at all: reported line by line)
    if isinstance(data, dict) and not {"prompt", "response"} & set(data):  # a result file
        responses = data.get("responses")
        if data.get("kind") == "asr-curve" or (responses is None and "points" in data):
            raise InputError(
                f"{path} is an ASR curve; judge one point at a time: its 'points' list holds "
                "one evaluate result per number of heads."
            )
        if not isinstance(responses, list):
            raise InputError(
                f"{path} is JSON without a 'responses' list; pass a JSON Lines file with "
                "prompt and response fields, or a result of safety-heads evaluate."
            )
        text = "\n".join(json.dumps(r) for r in responses)
    pairs = _pairs_from_jsonl(path, text)
    if not pairs:
        raise InputError(f"{path} holds no (prompt, response) pairs.")
    return pairs


def check_replaceable(out: Path, source: Path, overwrite: bool) -> None:
    """Refuse to write over ``out`` unless ``overwrite`` and it is an earlier verdicts file
    (a JSON object with ``judge`` and ``verdicts``): never the input, never another file."""
    if source.exists() and out.resolve() == source.resolve():
        raise InputError(f"--out {out} is the file being judged; write the verdicts elsewhere.")
    if not overwrite:
        raise InputError(f"--out {out} exists; pass --overwrite to replace it, or another path.")
    try:
        earlier = json.loads(out.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        earlier = None
    if not (isinstance(earlier, dict) and {"judge", "verdicts"} <= earlier.keys()):
        raise InputError(
            f"--out {out} exists and is not a verdicts file of safety-heads judge; --overwrite "
            "only replaces those. Choose another path."
        )


def run_judge(args: argparse.Namespace) -> int:
    from safety_heads.evaluation.asr import asr_figures
    from safety_heads.evaluation.generation import Response
    from safety_heads.evaluation.judges import ContentJudge, KeywordJudge, check_verdicts

    out = Path(args.out)
    if out.is_dir() or not out.resolve().parent.is_dir():
        raise InputError(f"--out {out}: its folder does not exist or it is a folder.")
    if out.exists():
        check_replaceable(out, Path(args.file), args.overwrite)
    pairs = read_pairs(Path(args.file))
    judge = judge_from_args(args)
    if isinstance(judge, ContentJudge):
        if args.model is not None:
            judge = judge.with_model(load_from_args(args), args.template, args.system)
        else:
            sys.stderr.write(
                "safety-heads judge: no --model, so the coherence check is off "
                "(word salad may read as compliance); pass the model that wrote "
                "the answers.\n"
            )
    prompts, answers = [p for p, _ in pairs], [r for _, r in pairs]
    verdicts = check_verdicts(judge, judge.judge(prompts, answers), len(pairs))
    keyword = KeywordJudge()
    responses = [
        Response(p, r, v, keyword.verdict(r))
        for p, r, v in zip(prompts, answers, verdicts, strict=True)
    ]
    result = {
        "judge": judge.name,
        "verdicts": [
            {key: v.to_dict()[key] for key in ("attack_success", "label", "reason")}
            for v in verdicts
        ],
        **{k: v for k, v in asr_figures(responses, judge.name).items() if k != "judge"},
    }
    out.write_text(json.dumps(result, indent=2) + "\n")
    print_json(
        {key: result[key] for key in ("judge", "asr", "asr_ci", "n", "labels")}
        | {"keyword_asr": result["keyword"]["asr"], "out": str(out)}
    )
    return 0
