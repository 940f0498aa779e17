"""A plain PyTorch LLaMA-style decoder: the baseline of bench_train.py.

Same architecture as our megatron-core GPTModel: token embedding, RoPE (base 10000, rotate-half), pre-RMSNorm,
fused QKV, causal attention (torch's scaled_dot_product_attention), SwiGLU MLP, no biases, final RMSNorm,
untied output layer, mean token cross-entropy. Written for this benchmark; not used by the package.
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def rope_tables(seq_length: int, head_dim: int, base: float = 10000.0):
    inv_freq = 1.0 / (base ** (torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim))
    freqs = torch.outer(torch.arange(seq_length, dtype=torch.float32), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)  # [s, d]
    return emb.cos(), emb.sin()


def apply_rope(x, cos, sin):
    half = x.shape[-1] // 2
    rotated = torch.cat([-x[..., half:], x[..., :half]], dim=-1)
    return x * cos + rotated * sin


class Block(nn.Module):
    def __init__(self, hidden: int, heads: int, ffn: int, eps: float):
        super().__init__()
        self.heads = heads
        self.attn_norm = nn.RMSNorm(hidden, eps=eps)
        self.qkv = nn.Linear(hidden, 3 * hidden, bias=False)
        self.proj = nn.Linear(hidden, hidden, bias=False)
        self.mlp_norm = nn.RMSNorm(hidden, eps=eps)
        self.gate_up = nn.Linear(hidden, 2 * ffn, bias=False)
        self.down = nn.Linear(ffn, hidden, bias=False)

    def forward(self, x, cos, sin):
        b, s, h = x.shape
        q, k, v = self.qkv(self.attn_norm(x)).view(b, s, 3, self.heads, h // self.heads).permute(2, 0, 3, 1, 4)
        q, k = apply_rope(q, cos, sin), apply_rope(k, cos, sin)
        a = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.proj(a.transpose(1, 2).reshape(b, s, h))
        gate, up = self.gate_up(self.mlp_norm(x)).chunk(2, dim=-1)
        return x + self.down(F.silu(gate) * up)


class PlainGPT(nn.Module):
    def __init__(self, vocab_size: int, num_layers: int, hidden: int, heads: int, ffn: int, seq_length: int,
                 eps: float = 1e-5, init_std: float = 0.02):
        super().__init__()
        self.embedding = nn.Embedding(vocab_size, hidden)
        self.blocks = nn.ModuleList(Block(hidden, heads, ffn, eps) for _ in range(num_layers))
        self.norm = nn.RMSNorm(hidden, eps=eps)
        self.output = nn.Linear(hidden, vocab_size, bias=False)
        cos, sin = rope_tables(seq_length, hidden // heads)
        self.register_buffer("cos", cos, persistent=False)
        self.register_buffer("sin", sin, persistent=False)
        for p in self.parameters():
            if p.dim() == 2:
                nn.init.normal_(p, std=init_std)

    def forward(self, tokens, labels):
        x = self.embedding(tokens)
        s = tokens.shape[1]
        cos, sin = self.cos[:s], self.sin[:s]
        for block in self.blocks:
            x = block(x, cos, sin)
        logits = self.output(self.norm(x))
        return F.cross_entropy(logits.view(-1, logits.shape[-1]), labels.reshape(-1))
