"""The config-driven phi-3 decoder: one class for the mini (dense Llama block), small (GQA, GEGLU, muP,
blocksparse) and MoE families."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from assay.kernels.linear_cross_entropy import LinearCrossEntropyConfig, linear_cross_entropy
from assay.trainer.attention import Attention
from assay.trainer.config import ModelConfig
from assay.trainer.layers import GeGLU, RotaryEmbedding, SwiGLU, make_norm
from assay.trainer.moe import MoEFeedForward


class Block(nn.Module):
    """Pre-norm residual block: x + attn(norm(x)), then x + ffn(norm(x))."""

    def __init__(self, cfg: ModelConfig, layer_index: int):
        super().__init__()
        self.attn_norm = make_norm(cfg)
        self.attn = Attention(cfg, layer_index)
        self.ffn_norm = make_norm(cfg)
        if cfg.n_experts > 0:
            self.ffn: nn.Module = MoEFeedForward(cfg)
        elif cfg.mlp == "geglu":
            self.ffn = GeGLU(cfg)
        else:
            self.ffn = SwiGLU(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.attn_norm(x), cos, sin)
        return x + self.ffn(self.ffn_norm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.embed = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layers))
        self.norm = make_norm(cfg)
        self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=cfg.lm_head_bias)
        if cfg.tie_embeddings:
            self.lm_head.weight = self.embed.weight
        self.rope = RotaryEmbedding(cfg.head_dim, cfg.rope_theta, cfg.max_seq_len, cfg.rope_short_factor,
                                    cfg.rope_long_factor, cfg.rope_original_max_seq_len, cfg.rope_attention_factor,
                                    cfg.rope_short_mscale, cfg.rope_long_mscale)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self) -> None:
        """Normal(0, init_std) weights, zero biases, unit norm gains."""
        std = self.cfg.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.normal_(module.weight, std=std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
            elif isinstance(module, MoEFeedForward):
                for p in (module.w_gate, module.w_up, module.w_down):
                    nn.init.normal_(p, std=std)
            elif isinstance(module, (nn.LayerNorm, nn.RMSNorm)):
                module.reset_parameters()

    def forward(self, tokens: torch.Tensor, targets: torch.Tensor | None = None) -> torch.Tensor:
        """tokens [B, T] -> logits [B, T, vocab]; with targets [B, T], the mean next-token loss instead
        (chunked with the output projection when `fused_loss`, no lm_head bias, and not compiling)."""
        t = tokens.shape[1]
        if t > self.cfg.max_seq_len:
            raise ValueError(f"sequence of {t} tokens exceeds max_seq_len={self.cfg.max_seq_len}; "
                             "raise [model] max_seq_len or shorten the data's seq_len")
        x = self.embed(tokens)
        if self.cfg.embedding_multiplier != 1.0:
            x = x * self.cfg.embedding_multiplier
        cos, sin = self.rope(t, x.dtype)
        for block in self.blocks:
            x = block(x, cos, sin)
        x = self.norm(x)
        fused = self.cfg.fused_loss and self.lm_head.bias is None and not torch.compiler.is_compiling()
        if targets is not None and fused:  # under torch.compile the plain path fuses (and does not graph-break)
            scale = LinearCrossEntropyConfig(logit_scale=1.0 / self.cfg.logit_divisor)
            return linear_cross_entropy(x.reshape(-1, x.shape[-1]), self.lm_head.weight, targets.reshape(-1),
                                        config=scale)
        logits = self.lm_head(x)
        if targets is not None:
            return lm_loss(logits / self.cfg.logit_divisor, targets)
        if self.cfg.logit_divisor != 1.0:
            logits = logits / self.cfg.logit_divisor
        return logits

    def moe_stats(self) -> list[dict[str, torch.Tensor]]:
        """Routing statistics of the last forward, one dict per MoE layer."""
        return [b.ffn.stats for b in self.blocks if isinstance(b.ffn, MoEFeedForward) and b.ffn.stats]


def lm_loss(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy in fp32."""
    return F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), targets.reshape(-1))
