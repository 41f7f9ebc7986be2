"""Chapter 3: attention, one step at a time, on a six-word sentence.

Runs in seconds on a CPU:  python chapters/ch03_attention.py
"""
import argparse
from pathlib import Path


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from minigpt import cli
from minigpt.attention import (CausalAttention, MultiHeadAttention, MultiHeadAttentionWrapper, SelfAttentionV1,
                               SelfAttentionV2, simple_self_attention)
from minigpt.files import save_figure

WORDS = ["Your", "journey", "starts", "with", "one", "step"]
PROG = Path(__file__).name


def heatmap(ax, weights: torch.Tensor, title: str) -> None:
    ax.imshow(weights.detach().numpy(), cmap="viridis", vmin=0, vmax=1)
    ax.set_xticks(range(len(WORDS)), WORDS, rotation=45)
    ax.set_yticks(range(len(WORDS)), WORDS)
    ax.set_title(title)
    for i in range(len(WORDS)):
        for j in range(len(WORDS)):
            ax.text(j, i, f"{weights[i, j]:.2f}", ha="center", va="center", fontsize=7, color="w")


def parse_args(argv=None) -> argparse.Namespace:
    """The options, range-checked before any work (a bad one: one line, exit status 2)."""
    parser = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=cli.seed, default=123)
    parser.add_argument("--out", type=cli.output_folder, default="out/ch03", help="folder for the figures")
    return parser.parse_args(argv)


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """The chapter's four steps, from dot products to multi-head attention."""
    args = parse_args(argv)
    torch.manual_seed(args.seed)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_printoptions(precision=3, sci_mode=False)

    # A 3-dimensional embedding per word, random but fixed by the seed (chapter 2 shows where real ones come from).
    inputs = torch.rand(len(WORDS), 3)
    print(f"Six words, each embedded as a 3-number vector:\n{inputs}\n")

    print("1. Attention without trainable weights: score every pair by a dot product, softmax each row,")
    print("   and average the inputs with those weights.")
    scores = inputs @ inputs.T
    weights = torch.softmax(scores, dim=-1)
    print(f"   attention weights of 'journey' (sum {weights[1].sum():.3f}): {weights[1]}")
    print(f"   its context vector: {simple_self_attention(inputs)[1]}\n")

    print("2. Trainable projections turn each input into a query, a key and a value (SelfAttentionV1, raw")
    print("   matrices; SelfAttentionV2, nn.Linear). Scores are divided by sqrt(d) so softmax stays soft.")
    v1, v2 = SelfAttentionV1(3, 2), SelfAttentionV2(3, 2)
    print(f"   V1 output shape {tuple(v1(inputs).shape)}; V2 output shape {tuple(v2(inputs).shape)}")
    with torch.no_grad():
        v1.W_query.copy_(v2.W_query.weight.T)
        v1.W_key.copy_(v2.W_key.weight.T)
        v1.W_value.copy_(v2.W_value.weight.T)
    print(f"   with V2's weights copied (transposed) into V1, they agree: "
          f"{torch.allclose(v1(inputs), v2(inputs), atol=1e-6)}\n")

    print("3. A language model must not peek at the next words: the causal mask sets scores above the")
    print("   diagonal to -inf before softmax, so those weights are exactly zero.")
    queries, keys = v2.W_query(inputs), v2.W_key(inputs)
    scores = queries @ keys.T / keys.shape[-1] ** 0.5
    masked = scores.masked_fill(torch.triu(torch.ones(6, 6, dtype=torch.bool), 1), float("-inf"))
    causal_weights = torch.softmax(masked, dim=-1)
    print(f"{causal_weights.detach()}\n")
    batch = torch.stack([inputs, inputs])
    causal = CausalAttention(3, 2, context_length=6, dropout=0.5)
    print(f"   CausalAttention on a batch of 2: output shape {tuple(causal(batch).shape)}")
    print("   Dropout (here 50%) zeroes random weights in training and scales the rest by 2:")
    print(f"{torch.nn.Dropout(0.5)(causal_weights).detach()}\n")

    print("4. Several heads attend in different ways. The wrapper runs separate CausalAttention heads; ")
    print("   MultiHeadAttention computes them all with one projection, split by reshaping, then mixes them")
    print("   with out_proj.")
    wrapper = MultiHeadAttentionWrapper(3, 2, context_length=6, dropout=0.0, num_heads=2)
    mha = MultiHeadAttention(3, 4, context_length=6, dropout=0.0, num_heads=2)
    print(f"   wrapper output {tuple(wrapper(batch).shape)} (2 heads x 2 dims); "
          f"MultiHeadAttention output {tuple(mha(batch).shape)}")
    n_wrapper = sum(p.numel() for p in wrapper.parameters())
    n_mha = sum(p.numel() for p in mha.parameters())
    print(f"   parameters: wrapper {n_wrapper}, MultiHeadAttention {n_mha} (the difference is out_proj)")
    gpt2_mha = MultiHeadAttention(768, 768, context_length=1024, dropout=0.0, num_heads=12)
    print(f"   GPT-2 small's attention layer: 12 heads of 64 dims, "
          f"{sum(p.numel() for p in gpt2_mha.parameters()):,} parameters\n")

    fig, axes = plt.subplots(1, 2, figsize=(10, 4.5))
    heatmap(axes[0], weights, "simple self-attention weights")
    heatmap(axes[1], causal_weights, "causal attention weights")
    fig.tight_layout()
    path = out / "attention_weights.png"
    save_figure(fig, path)
    print(f"Saved the two weight matrices as a picture: {path}")


if __name__ == "__main__":
    main()
