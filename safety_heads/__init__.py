"""safety-heads: find and test the attention heads a chat model relies on to refuse.

Implements Zhou et al., "On the Role of Attention Heads in Large Language Model Safety"
(ICLR 2025) on TransformerLens ``TransformerBridge`` models.
"""

from safety_heads.ablation import Ablation, ablated, ablation_hooks, heads_mask
from safety_heads.datasets import BUNDLED_DATASETS, load_prompts
from safety_heads.forward import Generation, generate, next_token_logprobs
from safety_heads.heads import Head, parse_head, parse_heads
from safety_heads.models import BUNDLED_MODELS, ChatModel, ModelLoadError, load_model
from safety_heads.prompts import QUERY_TEMPLATE, TokenBatch, encode_prompts, format_prompt
from safety_heads.surgery import ablate_weights, touched_parameters

__all__ = [
    "Ablation",
    "BUNDLED_DATASETS",
    "BUNDLED_MODELS",
    "ChatModel",
    "Generation",
    "Head",
    "ModelLoadError",
    "QUERY_TEMPLATE",
    "TokenBatch",
    "ablate_weights",
    "ablated",
    "ablation_hooks",
    "encode_prompts",
    "format_prompt",
    "generate",
    "heads_mask",
    "load_model",
    "load_prompts",
    "next_token_logprobs",
    "parse_head",
    "parse_heads",
    "touched_parameters",
]

__version__ = "0.1.0"
