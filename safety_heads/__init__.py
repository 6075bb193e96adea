"""safety-heads: find and test the attention heads a chat model relies on to refuse.

Implements Zhou et al., "On the Role of Attention Heads in Large Language Model Safety"
(ICLR 2025) on TransformerLens ``TransformerBridge`` models.
"""

from safety_heads import organisms
from safety_heads.datasets import BUNDLED_DATASETS, load_prompts, load_xstest
from safety_heads.demo import DEFAULT_BASE, DEFAULT_MODEL, DemoConfig, run_demo
from safety_heads.errors import InputError, SafetyHeadsError
from safety_heads.evaluation.asr import (
    AsrCurve,
    AsrResult,
    Rate,
    asr_curve,
    evaluate_asr,
    success_rate,
)
from safety_heads.evaluation.classifiers import CLASSIFIER_PRESETS, ClassifierJudge
from safety_heads.evaluation.export import ExportReport, export_ablated, load_ablated_hf
from safety_heads.evaluation.generation import (
    GenerationConfig,
    Response,
    generate_responses,
    next_token_kl,
)
from safety_heads.evaluation.judges import (
    EXPLICIT_REFUSAL_PHRASES,
    LABELS,
    REFUSAL_PHRASES,
    ContentJudge,
    FunctionJudge,
    Judge,
    KeywordJudge,
    Verdict,
    as_judge,
)
from safety_heads.evaluation.side_effects import (
    UTILITY_TASKS,
    SideEffects,
    side_effects,
    zero_shot_utility,
)
from safety_heads.figures import plots
from safety_heads.figures.attention import AttentionPatterns, attention_patterns, attention_view
from safety_heads.figures.compare import (
    MapComparison,
    compare_maps,
    compare_results,
    read_scores,
    score_map,
    spearman,
    topk_jaccard,
)
from safety_heads.figures.report import build_report, report_html, write_report
from safety_heads.method import screens
from safety_heads.method.ablation import (
    Ablation,
    AblationMethod,
    PromptAblations,
    ablated,
    ablation_hooks,
    heads_mask,
)
from safety_heads.method.forward import Generation, generate, next_token_logprobs
from safety_heads.method.heads import Head, parse_head, parse_heads
from safety_heads.method.sahara import SaharaResult, generalized_ships, sahara
from safety_heads.method.ships import ShipsResult, ships
from safety_heads.method.surgery import ablate_weights, touched_parameters
from safety_heads.models.chat_model import BUNDLED_MODELS, ChatModel, ModelLoadError, load_model
from safety_heads.models.prompts import QUERY_TEMPLATE, TokenBatch, encode_prompts, format_prompt
from safety_heads.results import load_result

__all__ = [
    "ablate_weights",
    "ablated",
    "Ablation",
    "AblationMethod",
    "PromptAblations",
    "ablation_hooks",
    "as_judge",
    "asr_curve",
    "AsrCurve",
    "AsrResult",
    "attention_patterns",
    "attention_view",
    "AttentionPatterns",
    "build_report",
    "BUNDLED_DATASETS",
    "BUNDLED_MODELS",
    "ChatModel",
    "ClassifierJudge",
    "CLASSIFIER_PRESETS",
    "ContentJudge",
    "LABELS",
    "compare_maps",
    "compare_results",
    "DEFAULT_BASE",
    "DEFAULT_MODEL",
    "DemoConfig",
    "encode_prompts",
    "evaluate_asr",
    "EXPLICIT_REFUSAL_PHRASES",
    "export_ablated",
    "ExportReport",
    "format_prompt",
    "FunctionJudge",
    "generalized_ships",
    "generate",
    "generate_responses",
    "Generation",
    "GenerationConfig",
    "Head",
    "heads_mask",
    "Judge",
    "KeywordJudge",
    "load_ablated_hf",
    "load_model",
    "load_prompts",
    "load_xstest",
    "MapComparison",
    "ModelLoadError",
    "SafetyHeadsError",
    "InputError",
    "next_token_kl",
    "next_token_logprobs",
    "parse_head",
    "parse_heads",
    "plots",
    "organisms",
    "screens",
    "QUERY_TEMPLATE",
    "Rate",
    "read_scores",
    "load_result",
    "REFUSAL_PHRASES",
    "report_html",
    "Response",
    "run_demo",
    "sahara",
    "SaharaResult",
    "score_map",
    "ships",
    "ShipsResult",
    "side_effects",
    "SideEffects",
    "spearman",
    "success_rate",
    "TokenBatch",
    "topk_jaccard",
    "touched_parameters",
    "UTILITY_TASKS",
    "Verdict",
    "write_report",
    "zero_shot_utility",
]

__version__ = "0.1.0"
