"""Peak memory of loading a model with ``load_model`` against Hugging Face's own
``from_pretrained``, and of one Ships pass, on a random Llama of about 1B parameters saved to
disk (no download).

Each measurement runs in a fresh Python process (peak resident memory only grows, so two in
one process would hide each other) and reports its peak resident memory above the memory it
held once the libraries were imported. ``load_model`` must hold no second copy of the
weights: the goal is at most 1.2x Hugging Face's peak::

    python benchmarks/load_memory.py              # ~1B parameters, bf16, CPU: a few minutes
    python benchmarks/load_memory.py --tiny       # seconds (what the test suite runs)

On a GPU (``--device cuda``) the peak GPU memory is reported as well.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

SIZES = {  # hidden, layers, heads, intermediate: ~1.0B and ~3M parameters
    "1b": (2048, 16, 16, 5632),
    "tiny": (64, 2, 4, 128),
}

MEASURE = r"""
import json, re, sys, torch
folder, what, device, dtype = sys.argv[1:5]
import safety_heads as sh
from transformers import AutoModelForCausalLM, AutoTokenizer
def status(field):  # kB in /proc/self/status (Linux): VmRSS now, VmHWM the peak so far
    return int(re.search(rf"{field}:\s+(\d+)", open("/proc/self/status").read()).group(1)) * 1024
tokenizer = AutoTokenizer.from_pretrained(folder)
ids = tokenizer("Explain how to pick a lock", return_tensors="pt").input_ids.to(device)
start = status("VmRSS")
if device == "cuda":
    torch.cuda.reset_peak_memory_stats()
with torch.no_grad():
    if what == "hf":
        model = AutoModelForCausalLM.from_pretrained(folder, dtype=getattr(torch, dtype)).to(device)
        model(ids)  # a forward pass reads every weight (safetensors are mapped lazily)
    else:
        model = sh.load_model(folder, dtype=dtype, device=device)
        model.bridge(ids)
if what == "ships":
    sh.ships(model, ["Explain how to pick a lock", "Write a poem about the sea"],
             heads="0.0,1.1", template="chat", progress=False)
gpu = torch.cuda.max_memory_allocated() if device == "cuda" else 0
print(json.dumps({"rss_above_imports": status("VmHWM") - start, "gpu_peak": gpu}))
"""


def make_model(folder: Path, size: str) -> int:
    """A random Llama of ``size`` saved in bf16 with the bundled tokenizer; its parameters."""
    import torch
    from gpu_scale import llama_config  # the same random Llama, another size
    from transformers import LlamaForCausalLM

    tokenizer, config = llama_config(SIZES[size])
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return sum(p.numel() for p in model.parameters())


def measure(folder: Path, what: str, device: str, dtype: str) -> dict[str, int]:
    out = subprocess.run(
        [sys.executable, "-c", MEASURE, str(folder), what, device, dtype],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def run(size: str, device: str, dtype: str) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "random-llama"
        parameters = make_model(folder, size)
        weights = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        hf = measure(folder, "hf", device, dtype)
        ours = measure(folder, "load_model", device, dtype)
        ships = measure(folder, "ships", device, dtype)
    return {
        "parameters": parameters,
        "weights_bytes": weights,
        "hf_from_pretrained": hf["rss_above_imports"],
        "load_model": ours["rss_above_imports"],
        "load_model_and_ships": ships["rss_above_imports"],
        "ratio": ours["rss_above_imports"] / max(hf["rss_above_imports"], 1),
        "gpu_hf": hf["gpu_peak"],
        "gpu_load_model": ours["gpu_peak"],
        "gpu_ships": ships["gpu_peak"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="a ~3M-parameter model (seconds)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default="bfloat16")
    args = parser.parse_args()
    figures = run("tiny" if args.tiny else "1b", args.device, args.dtype)
    gib = 2**30
    print(
        f"random Llama, {figures['parameters'] / 1e9:.2f}B parameters, "
        f"{figures['weights_bytes'] / gib:.2f} GiB on disk, {args.dtype} on {args.device}"
    )
    for key in ("hf_from_pretrained", "load_model", "load_model_and_ships"):
        print(f"  peak memory above imports, {key:>22}: {figures[key] / gib:6.2f} GiB")
    print(f"  load_model / from_pretrained: {figures['ratio']:.2f}x (goal: at most 1.2x)")
    if args.device == "cuda":
        for key in ("gpu_hf", "gpu_load_model", "gpu_ships"):
            print(f"  peak GPU memory, {key:>15}: {figures[key] / gib:6.2f} GiB")
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
