"""``info`` and ``format``: look at a model and at prompts as the model sees them."""

import argparse
import sys

from safety_heads.cli.common import (
    Runner,
    add_model_options,
    add_prompt_options,
    load_from_args,
    print_json,
    prompts_from_args,
)


def register(subparsers) -> dict[str, Runner]:
    info = subparsers.add_parser("info", help="load a model and describe it")
    add_model_options(info)
    show = subparsers.add_parser("format", help="show prompts exactly as the model sees them")
    add_model_options(show)
    add_prompt_options(show)
    show.set_defaults(limit=3)
    return {"info": run_info, "format": run_format}


def run_info(args: argparse.Namespace) -> int:
    model = load_from_args(args)
    print_json(
        {
            "model": model.name,
            "source": model.source,
            "n_layers": model.n_layers,
            "n_heads": model.n_heads,
            "n_key_value_heads": model.n_kv_heads,
            "d_head": model.d_head,
            "chat_format": model.chat_format,
            "dtype": str(model.dtype).removeprefix("torch."),
            "device": str(model.device),
        }
    )
    return 0


def run_format(args: argparse.Namespace) -> int:
    model = load_from_args(args)
    batch = model.encode(prompts_from_args(args), template=args.template, system=args.system)
    for row, mask in zip(batch.input_ids, batch.attention_mask, strict=True):
        ids = row[mask.bool()].tolist()
        sys.stdout.write(f"--- {len(ids)} tokens ---\n{model.tokenizer.decode(ids)}\n")
    return 0
