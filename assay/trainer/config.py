"""Configuration of the trainer as dataclasses, the one place where every default lives.

A run config is a TOML file with three tables, `[model]`, `[train]` and `[eval]` (read by config_file.py,
where `[model]` may name a preset). A bad value raises groundwork's ConfigError naming the field.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from assay.groundwork.config import ConfigError, FieldError, check_choices


@dataclass
class ModelConfig:
    """One decoder family: phi-3-mini (Llama block), phi-3-small (GQA, GEGLU, muP, blocksparse) or phi-3.5-MoE."""

    vocab_size: int = 512  # token ids 0..vocab_size-1 (the tokenizer's size, from a token-shard folder)
    d_model: int = 64  # width of the residual stream
    n_layers: int = 2  # decoder blocks
    n_heads: int = 4  # query heads; head_dim = d_model / n_heads
    n_kv_heads: int = 4  # key/value heads (grouped-query attention when fewer than n_heads)
    ffn_dim: int = 172  # hidden width of the MLP (of each expert under MoE)
    max_seq_len: int = 256  # longest sequence the positions are built for
    #: sliding attention window (Phi-3-mini: 2047): token i attends to keys j with i - j < sliding_window,
    #: as transformers' Phi3 defines it (0 = full causal attention)
    sliding_window: int = 0
    rope_theta: float = 10000.0  # RoPE base frequency
    #: LongRoPE (phi-3.5, Phi-3-*-128k), as transformers defines "longrope": per-frequency rescale factors,
    #: `rope_short_factor` for sequences of at most `rope_original_max_seq_len` tokens and `rope_long_factor`
    #: beyond it (head_dim / 2 values each), and cos/sin times `rope_attention_factor` (0 = the paper's
    #: sqrt(1 + ln(s) / ln(original)), s = max_seq_len / original). Empty factor lists = plain RoPE.
    rope_short_factor: list[float] = field(default_factory=list)  # rescale factors up to the original length
    rope_long_factor: list[float] = field(default_factory=list)  # rescale factors beyond it
    rope_original_max_seq_len: int = 0  # the length the model was pre-trained at
    rope_attention_factor: float = 0.0  # cos/sin multiplier (0: the paper's formula above)
    #: PhiMoE's LongRoPE (phi-3.5-MoE) scales cos/sin by its own short_mscale / long_mscale (by sequence
    #: length) instead of the attention factor; 0 = the attention factor
    rope_short_mscale: float = 0.0  # up to the original length
    rope_long_mscale: float = 0.0  # beyond it
    norm: Literal["rms", "layer"] = "rms"  # RMSNorm (phi-3-mini, MoE) or LayerNorm (phi-3-small)
    norm_eps: float = 1e-5  # epsilon of the norms
    mlp: Literal["swiglu", "geglu"] = "swiglu"  # (phi-3-small: interleaved up-projection, quick-GELU, clamp)
    geglu_limit: float = 20.0  # GEGLU clamps its gate above and its linear half to +-limit (phi-3-small gegelu_limit)
    bias: bool = False  # biases on qkv, attention output and MLP projections
    lm_head_bias: bool = False  # a bias on the output projection
    tie_embeddings: bool = False  # the output projection shares the embedding matrix
    # muP multipliers (phi-3-small): embeddings * embedding_multiplier; attention scale attn_multiplier / d
    # when mup_attention is set (1/sqrt(d) otherwise); logits / logit_divisor.
    embedding_multiplier: float = 1.0  # muP: embeddings are multiplied by this
    mup_attention: bool = False  # muP attention scale attn_multiplier / head_dim instead of 1 / sqrt(head_dim)
    attn_multiplier: float = 1.0  # muP: numerator of the attention scale (with mup_attention)
    logit_divisor: float = 1.0  # muP: logits are divided by this
    # blocksparse attention (phi-3-small): layers with (i + 1) % dense_every != 0 are blocksparse;
    # dense_every = 0 makes every layer dense.
    dense_every: int = 0  # layer i is dense when (i + 1) % dense_every == 0, else blocksparse; 0: all dense
    block_size: int = 64  # blocksparse: tokens per block
    local_blocks: int = 16  # blocksparse: most recent key blocks each query block sees (its own included)
    vertical_stride: int = 8  # blocksparse: a remote "vertical" key block every this many blocks
    homogeneous_heads: bool = False  # blocksparse: every head the same vertical blocks (no per-head offset)
    # mixture of experts (phi-3.5-MoE): n_experts = 0 means a dense MLP
    n_experts: int = 0  # experts per MoE layer; 0: a dense MLP
    top_k: int = 2  # experts each token is routed to (sparsemixer: 2)
    router: Literal["sparsemixer", "softmax"] = "sparsemixer"  # PhiMoE's SparseMixer top-2, or softmax top-k
    router_jitter: float = 0.01  # SparseMixer's jitter epsilon (PhiMoE's router_jitter_noise)
    input_jitter: float = 0.0  # in training, router inputs times uniform(1 - x, 1 + x) (PhiMoE's input_jitter_noise)
    aux_loss_coef: float = 0.0  # weight of the Switch-style load-balance loss added to training loss; 0: none
    #: attention implementation (assay/kernels/attention.py); "auto" picks by device and pattern
    attn_backend: Literal["auto", "reference", "sdpa", "flex", "triton"] = "auto"
    moe_backend: Literal["auto", "reference", "triton"] = "auto"  # expert MLP implementation (assay/kernels/moe.py)
    fused_loss: bool = True  # training loss through kernels' chunked linear cross-entropy (no [N, V] logits kept)
    init_std: float = 0.02  # weights start Normal(0, init_std); biases zero, norm gains one

    def __post_init__(self) -> None:
        try:
            check_choices(self)  # norm, mlp, router, attn_backend, moe_backend
        except FieldError as exc:
            raise ConfigError(f"[model] {exc}") from None
        checks = [
            (self.d_model % self.n_heads == 0,
             f"d_model ({self.d_model}) must be divisible by n_heads ({self.n_heads})"),
            (self.n_heads % self.n_kv_heads == 0,
             f"n_heads ({self.n_heads}) must be a multiple of n_kv_heads ({self.n_kv_heads})"),
            (self.head_dim % 2 == 0, f"head_dim ({self.head_dim}) must be even for RoPE"),
            (self.n_experts == 0 or 1 <= self.top_k <= self.n_experts,
             f"top_k ({self.top_k}) must be in 1..n_experts ({self.n_experts})"),
            (self.router != "sparsemixer" or self.n_experts == 0 or self.top_k == 2,
             "the sparsemixer router is top-2: set top_k = 2 or router = 'softmax'"),
            (self.n_layers >= 1 and self.vocab_size >= 2, "n_layers must be >= 1 and vocab_size >= 2"),
            (self.sliding_window >= 0, f"sliding_window must be >= 0 (0 = none), got {self.sliding_window}"),
            (not (self.rope_short_factor or self.rope_long_factor)
             or (len(self.rope_short_factor) == len(self.rope_long_factor) == self.head_dim // 2
                 and self.rope_original_max_seq_len > 0),
             f"LongRoPE needs rope_short_factor and rope_long_factor of head_dim / 2 = {self.head_dim // 2} values "
             f"each and rope_original_max_seq_len > 0 (got {len(self.rope_short_factor)}, "
             f"{len(self.rope_long_factor)}, {self.rope_original_max_seq_len})"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(f"[model] {message}")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def attention_scale(self) -> float:
        return self.attn_multiplier / self.head_dim if self.mup_attention else self.head_dim ** -0.5


@dataclass
class TrainConfig:
    """The optimisation loop: data, schedule, batch, checkpoints, metrics, parallelism."""

    data: str = ""  # a token-shard directory (`assay mix` output); "synthetic" for a random token stream
    out_dir: str = "out/train"  # checkpoints, metrics and evaluation go here
    seed: int = 0  # initial weights, per-rank random state and the synthetic token stream
    micro_batch: int = 8  # sequences per forward/backward on one process
    grad_accum: int = 1  # micro-batches per optimizer step
    max_steps: int = 100  # optimizer steps of the whole run
    lr: float = 3e-3  # peak learning rate (AdamW)
    min_lr_ratio: float = 0.1  # the schedule ends at lr * min_lr_ratio (assay/trainer/schedule.py)
    warmup_steps: int = 10  # linear warm-up from 0 to lr
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"  # learning-rate shape after warm-up
    wsd_decay_fraction: float = 0.2  # wsd: share of the steps spent decaying at the end
    weight_decay: float = 0.1  # AdamW weight decay
    beta1: float = 0.9  # AdamW beta1
    beta2: float = 0.95  # AdamW beta2
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # gradient norm clipped to this
    precision: Literal["auto", "fp32", "bf16"] = "auto"  # "auto": bf16 autocast on GPU, fp32 on CPU
    #: torch.compile the model: true, false, or "auto" (on for CPU runs of at least
    #: assay.trainer.compile_policy.AUTO_MIN_STEPS steps, where the ~1.3x speed-up repays the cold compile)
    compile: bool | Literal["auto"] = "auto"
    parallel: Literal["ddp", "fsdp2"] = "ddp"  # under torchrun: "ddp" (replicated) or "fsdp2" (sharded parameters)
    checkpoint_every: int = 50  # save a checkpoint every this many steps (and at the end)
    keep_checkpoints: int = 2  # newest checkpoints kept; older ones are deleted
    log_every: int = 1  # write a metrics line every this many steps
    eval_every: int = 0  # 0: evaluate only at the end
    progress: bool = True  # a progress bar on the main process
    peak_flops: float = 0.0  # per device; 0 = measure a matmul peak at start
    stop_after: int = 0  # stop (as if killed) after this many steps of this invocation; 0 = run to max_steps
    synthetic_sequences: int = 256  # data = "synthetic": sequences in the random token stream
    synthetic_seq_len: int = 64  # data = "synthetic": tokens per sequence
    #: a transformers folder (Phi3 / PhiMoE / Llama, e.g. from `assay export`) whose weights a fresh run starts
    #: from; its architecture must equal [model]; ignored when the output folder has a checkpoint to resume
    init_from: str = ""

    def __post_init__(self) -> None:
        try:
            check_choices(self)  # schedule, precision, parallel
        except FieldError as exc:
            raise ConfigError(f"[train] {exc}") from None
        if self.compile not in (True, False, "auto"):
            raise ConfigError(f"[train] compile must be true, false or \"auto\", got {self.compile!r}")
        for name in ("micro_batch", "grad_accum", "max_steps"):
            if getattr(self, name) < 1:
                raise ConfigError(f"[train] {name} must be >= 1, got {getattr(self, name)}")


@dataclass
class EvalConfig:
    """What `assay eval` and the end-of-training evaluation run."""

    heldout: bool = True  # per-pool loss and bits-per-byte on <data>/heldout/*.parquet
    heldout_max_docs: int = 200  # held-out documents scored per pool
    tasks: list[str] = field(default_factory=list)  # cloze JSONL files, or "mmlu" for data/eval/mmlu.jsonl.gz
    task_limit: int = 0  # 0 = every item
    batch_size: int = 8  # sequences per forward pass of the evaluation


@dataclass
class RunConfig:
    """A run config file: its three tables."""

    model: ModelConfig = field(default_factory=ModelConfig)  # [model]
    train: TrainConfig = field(default_factory=TrainConfig)  # [train]
    eval: EvalConfig = field(default_factory=EvalConfig)  # [eval]
