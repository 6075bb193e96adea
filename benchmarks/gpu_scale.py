"""Ships and Sahara at the scale of Llama-2-7b-chat, on random weights (no download).

A Llama of Llama-2-7b's shape (32 layers x 32 heads, d_model 4096, MLP 11008; the bundled
tokenizer's 49,152-token vocabulary) in bfloat16 on a GPU:

(a) Ships over all 1,024 heads x 32 AdvBench prompts (chat template);
(b) one Sahara step (Generalized Ships of every head, rank 1) over 100 prompts;
(c) the one-pass-per-head reference loop on a sample of heads for both, scaled to all
    heads, with the largest difference between its scores and the fast path's;
(d) the attribution-patching screen (``screen="atp"``, Undifferentiated Attention) over all
    1,024 heads x the Sahara prompts (100): one forward and one backward pass per batch.

It prints the times, the speed-ups, the agreement and the peak GPU memory, in one process.
Anchors: the paper needed about 6 A100-hours for Ships and Sahara on Llama-2-7b-chat; the
nnsight replication states 5-10 minutes per query for Ships over 1,024 heads and 2-4 hours
for a Sahara step over 100 queries. Goals on one H100/H200-class GPU: (a) under a minute,
(b) under 5 minutes, both exact against the reference loop::

    python benchmarks/gpu_scale.py                   # on a GPU
    python benchmarks/gpu_scale.py --tiny            # a tiny model on the CPU (seconds)
"""

import argparse
import json
import platform
import time

import torch

import safety_heads as sh
from safety_heads.method.heads import Head
from safety_heads.method.per_head_loop import generalized_ships_reference, ships_reference
from safety_heads.method.sahara import generalized_ships
from safety_heads.method.screens import attribution_scores

SHAPES = {  # hidden, layers, heads, intermediate
    "llama-2-7b": (4096, 32, 32, 11008),
    "tiny": (64, 3, 4, 128),
}


def llama_config(sizes: tuple[int, int, int, int], **more):
    """The bundled tokenizer and a Llama config of ``(hidden, layers, heads, intermediate)``
    for it (random weights are built from it; nothing is downloaded)."""
    from transformers import AutoTokenizer, LlamaConfig

    from safety_heads.models.cache import bundled_base_folder

    tokenizer = AutoTokenizer.from_pretrained(str(bundled_base_folder()))
    hidden, layers, heads, intermediate = sizes
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        intermediate_size=intermediate,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        **more,
    )
    config.architectures = ["LlamaForCausalLM"]
    return tokenizer, config


def random_model(shape: str, device: str, dtype: torch.dtype):
    """A random Llama of ``shape`` built directly on ``device`` in ``dtype``."""
    from transformers import LlamaForCausalLM

    tokenizer, config = llama_config(
        SHAPES[shape],
        max_position_embeddings=4096,
        initializer_range=0.02 if shape != "tiny" else 0.15,
        attn_implementation="eager",
    )
    torch.manual_seed(0)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # never a float32 copy of a 7B model
    try:
        with torch.device(device):
            hf = LlamaForCausalLM(config).eval()
    finally:
        torch.set_default_dtype(default)
    return sh.ChatModel.from_hf(hf, tokenizer, name=f"random-{shape}")


def sample_heads(model, count: int) -> list[Head]:
    heads = [Head(layer, h) for layer in range(model.n_layers) for h in range(model.n_heads)]
    step = max(1, len(heads) // count)
    return heads[::step][:count]


def timed(function):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    start = time.perf_counter()
    value = function()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return value, time.perf_counter() - start


def run(shape: str, device: str, dtype: torch.dtype, n_ships: int, n_sahara: int, sample: int):
    """All measurements as a dict (also what the test suite checks with ``--tiny``)."""
    model = random_model(shape, device, dtype)
    prompts = sh.load_prompts("advbench", limit=max(n_ships, n_sahara))
    heads = sample_heads(model, sample)
    n_total = model.n_layers * model.n_heads
    scale = (n_total + 1) / (len(heads) + 1)  # one base pass + one per head, per prompt
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    ships, ships_s = timed(
        lambda: sh.ships(model, prompts[:n_ships], template="chat", progress=False)
    )
    ships_memory = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    step, step_s = timed(
        lambda: generalized_ships(model, prompts[:n_sahara], template="chat", progress=False)
    )
    step_memory = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    reference, reference_s = timed(
        lambda: ships_reference(model, prompts[:n_ships], heads, template="chat")
    )
    chosen = ships.per_prompt[:, [h.layer for h in heads], [h.head for h in heads]]
    step_reference, step_reference_s = timed(
        lambda: generalized_ships_reference(model, prompts[:n_sahara], heads, template="chat")
    )
    step_chosen = step.scores[[h.layer for h in heads], [h.head for h in heads]]
    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    screen, screen_s = timed(lambda: attribution_scores(model, prompts[:n_sahara], batch_size=16))
    screen_memory = torch.cuda.max_memory_allocated() if device.startswith("cuda") else 0
    return {
        "shape": shape,
        "device": device,
        "dtype": str(dtype).removeprefix("torch."),
        "heads": n_total,
        "ships_prompts": n_ships,
        "sahara_prompts": n_sahara,
        "sampled_heads": len(heads),
        "ships_seconds": ships_s,
        "ships_reference_seconds": reference_s * scale,
        "ships_speedup": reference_s * scale / ships_s,
        "ships_max_difference": (chosen - reference).abs().max().item(),
        "ships_peak_gpu_bytes": ships_memory,
        "sahara_step_seconds": step_s,
        "sahara_reference_seconds": step_reference_s * scale,
        "sahara_speedup": step_reference_s * scale / step_s,
        "sahara_max_difference_degrees": (step_chosen - step_reference).abs().max().item(),
        "sahara_peak_gpu_bytes": step_memory,
        "atp_screen_prompts": n_sahara,
        "atp_screen_seconds": screen_s,
        "atp_screen_heads_scored": int(screen.scores.isfinite().sum()),
        "atp_screen_peak_gpu_bytes": screen_memory,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a tiny model on the CPU")
    parser.add_argument("--device", default=None, help="default: cuda, or cpu with --tiny")
    parser.add_argument("--ships-prompts", type=int, default=32)
    parser.add_argument("--sahara-prompts", type=int, default=100)
    parser.add_argument("--sample", type=int, default=16, help="heads the reference loop runs")
    parser.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = parser.parse_args()
    device = args.device or ("cpu" if args.tiny else "cuda")
    if device.startswith("cuda") and not torch.cuda.is_available():
        parser.error("no CUDA device here; run on a GPU, or pass --tiny for the CPU version")
    dtype = torch.float32 if args.tiny else torch.bfloat16
    figures = run(
        "tiny" if args.tiny else "llama-2-7b",
        device,
        dtype,
        args.ships_prompts,
        args.sahara_prompts,
        args.sample,
    )
    name = torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor()
    gib = 2**30
    print(f"{figures['shape']} ({figures['heads']} heads), {figures['dtype']}, {name}")
    print(
        f"(a) Ships, {figures['heads']} heads x {figures['ships_prompts']} prompts: "
        f"{figures['ships_seconds']:.1f} s; reference loop {figures['ships_reference_seconds']:.1f}"
        f" s ({figures['sampled_heads']} heads timed, scaled), {figures['ships_speedup']:.1f}x; "
        f"max |difference| {figures['ships_max_difference']:.1e} nats; peak GPU "
        f"{figures['ships_peak_gpu_bytes'] / gib:.1f} GiB"
    )
    print(
        f"(b) one Sahara step, {figures['sahara_prompts']} prompts: "
        f"{figures['sahara_step_seconds']:.1f} s; reference loop "
        f"{figures['sahara_reference_seconds']:.1f} s, {figures['sahara_speedup']:.1f}x; max "
        f"|difference| {figures['sahara_max_difference_degrees']:.1e} degrees; peak GPU "
        f"{figures['sahara_peak_gpu_bytes'] / gib:.1f} GiB"
    )
    print(
        f"(d) atp screen, {figures['heads']} heads x {figures['atp_screen_prompts']} prompts: "
        f"{figures['atp_screen_seconds']:.1f} s; peak GPU "
        f"{figures['atp_screen_peak_gpu_bytes'] / gib:.1f} GiB"
    )
    print(json.dumps(figures))
    if args.out:
        with open(args.out, "w") as handle:
            json.dump(figures, handle, indent=1)


if __name__ == "__main__":
    main()
