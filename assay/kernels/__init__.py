"""assay.kernels: attention (blocksparse/dense, GQA), MoE SwiGLU, RMSNorm and linear cross-entropy.

Entry points: assay.kernels.attention.attention, assay.kernels.moe.moe_ffn, assay.kernels.rmsnorm.rms_norm,
kernels.linear_cross_entropy.linear_cross_entropy. Each has a plain PyTorch path (CPU, ground truth) and a fused
Triton path (CUDA; or CPU under TRITON_INTERPRET=1 for tests). Modules import Triton only when they need it.
"""
