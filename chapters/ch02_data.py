"""Chapter 2: from stories to training batches: sliding windows, a DataLoader, embeddings, shards and mixing.

Runs in seconds on a CPU, offline:  python chapters/ch02_data.py
"""
import argparse
import time
from pathlib import Path


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import torch

from minigpt import cli
from minigpt.data import (STORIES_DIR, GPTDataset, MixedDataset, ShardDataset, create_dataloader, join_documents,
                          load_stories)
from minigpt.device import pick_device
from minigpt.files import InputError, save_figure
from minigpt.prepare import prepare_shards
from minigpt.tokenizer import gpt2_tiktoken_encoding, gpt2_tokenizer


PROG = Path(__file__).name
SHARD_WINDOW = 64   # tokens per window in sections 6 and 7 (shards and mixing)
# The embedding table of section 5 holds 50,257 x embed-dim numbers: 4096 makes it 0.8 GB in float32.
MAX_EMBED_DIM = 4096


def show(tokenizer, ids) -> str:
    return repr(tokenizer.decode([int(i) for i in ids]))


def parse_args(argv=None) -> argparse.Namespace:
    """The options, each range-checked before any work (a bad one: one line, exit status 2)."""
    parser = cli.ArgumentParser(prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stories", default=str(STORIES_DIR), help="folder of .txt stories (default: bundled)")
    parser.add_argument("--max-length", type=cli.int_range(2, 100_000), default=8,
                        help="tokens per window in the small examples (at least 2, so that windows can overlap; "
                             "at most the first story's length)")
    parser.add_argument("--batch-size", type=cli.positive_int, default=8)
    parser.add_argument("--embed-dim", type=cli.int_range(1, MAX_EMBED_DIM), default=256,
                        help=f"size of each token's embedding vector (1 to {MAX_EMBED_DIM})")
    parser.add_argument("--device", type=cli.device, default="auto",
                        help="auto (cuda if available, else cpu), cpu or cuda")
    parser.add_argument("--seed", type=cli.seed, default=123)
    parser.add_argument("--out", type=cli.output_folder, default="out/ch02",
                        help="folder for the figure and the example shards")
    return parser.parse_args(argv)


def check_corpus(args: argparse.Namespace, stories: list[str], first: list[int], ids: list[int]) -> None:
    """Is there enough text for every section? Asked before any is shown, so that a short corpus fails at once."""
    L = args.max_length
    if len(first) <= L:
        raise InputError(f"--max-length {L}: the first story in {args.stories} has {len(first)} tokens; windows of "
                         f"{L} need {L + 1} (inputs and the targets one further)")
    if len(stories) < 2 or len(first) <= SHARD_WINDOW:
        raise InputError(f"{args.stories}: the shard and mixing examples need two stories or more, the first of at "
                         f"least {SHARD_WINDOW + 1} tokens (it has {len(stories)}, of {len(first)} tokens)")
    windows = (len(ids) - 1) // 4
    if windows < args.batch_size:
        raise InputError(f"--batch-size {args.batch_size}: the stories make only {windows} windows of 4 tokens")


@cli.user_errors(PROG)
def main(argv=None) -> None:
    """The chapter's seven sections, in order."""
    args = parse_args(argv)
    device = pick_device(args.device)
    torch.manual_seed(args.seed)
    L = args.max_length

    print("1. The corpus: the bundled stories, tokenized with chapter 1's GPT-2 tokenizer.")
    tokenizer = gpt2_tokenizer()
    stories = load_stories(args.stories)
    names = [p.stem for p in sorted(Path(args.stories).glob("*.txt"))]
    started = time.perf_counter()
    per_story = [len(tokenizer.encode(s)) for s in stories]
    ids = join_documents(stories, tokenizer)
    first = tokenizer.encode(stories[0])
    check_corpus(args, stories, first, ids)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"   {len(stories)} stories, {sum(map(len, stories)):,} characters -> {len(ids):,} tokens "
          f"(with {len(stories) - 1} <|endoftext|> separators), tokenized in {time.perf_counter() - started:.2f} s")
    for name, chars, n in zip(names, map(len, stories), per_story):
        print(f"   {name:<36} {n:5d} tokens, {chars / n:.2f} characters per token")

    print(f"\n2. Next-token prediction: a window of {L} tokens, and the same window moved one token right.")
    for k in range(1, 5):
        print(f"   {show(tokenizer, first[:k]):<40} -> {show(tokenizer, first[k:k + 1])}")
    dataset = GPTDataset(first, max_length=L, stride=L // 2)
    print(f"   With stride {L // 2}, neighbouring windows share {L - L // 2} tokens:")
    for i in range(3):
        x, y = dataset[i]
        print(f"   window {i}: inputs  {x.tolist()}  {show(tokenizer, x)}")
        print(f"             targets {y.tolist()}  {show(tokenizer, y)}")

    print(f"\n3. The stride decides how many windows a story gives (story 1 has {len(first)} tokens, "
          f"max_length {L}):")
    for stride in (1, L // 2, L):
        d = GPTDataset(first, max_length=L, stride=stride)
        last = int(d.starts[-1]) + L + 1
        print(f"   stride {stride}: {len(d):5d} windows, overlap {L - stride} tokens, last window ends at "
              f"token {last} of {len(first)} (nothing dropped)")

    print("\n4. A DataLoader batches windows: shuffled with its own seeded generator, so runs agree.")
    loader = create_dataloader(ids, batch_size=args.batch_size, max_length=4, stride=4, seed=args.seed)
    inputs, targets = next(iter(loader))
    again, _ = next(iter(create_dataloader(ids, batch_size=args.batch_size, max_length=4, stride=4, seed=args.seed)))
    print(f"   {len(loader)} batches of shape {tuple(inputs.shape)}; same seed, same first batch: "
          f"{torch.equal(inputs, again)}")
    print(f"   inputs:\n{inputs}\n   targets:\n{targets}")

    print("\n5. Embeddings turn ids into vectors: one learned row per token id, plus one per position.")
    vocab_size, context_length = 50257, inputs.shape[1]
    token_embedding = torch.nn.Embedding(vocab_size, args.embed_dim).to(device)
    position_embedding = torch.nn.Embedding(context_length, args.embed_dim).to(device)
    token_vectors = token_embedding(inputs.to(device))
    position_vectors = position_embedding(torch.arange(context_length, device=device))
    input_embeddings = token_vectors + position_vectors  # broadcast: the same position rows for every sequence
    print(f"   token embeddings    {tuple(token_vectors.shape)}  (batch, tokens, embed_dim) on {device}")
    print(f"   position embeddings {tuple(position_vectors.shape)}  (tokens, embed_dim)")
    print(f"   their sum           {tuple(input_embeddings.shape)}  is what the GPT model of chapter 4 reads")
    print(f"   the weight matrices hold {token_embedding.weight.numel() + position_embedding.weight.numel():,} "
          f"numbers; an id's embedding is its row: "
          f"{torch.equal(token_vectors[0, 0], token_embedding.weight[inputs[0, 0]])}")

    print("\n6. Larger corpora are tokenized once into uint16 shards (python -m minigpt.prepare ...).")
    shards = out / "shards"
    manifest = prepare_shards([args.stories], shards, val_fraction=0.1, shard_tokens=4096,
                              encoding=gpt2_tiktoken_encoding(), progress=False)
    train = manifest["splits"]["train"]
    print(f"   {len(train['shards'])} train shards of up to 4096 tokens in {shards}")
    if sum((shard["tokens"] - 1) // SHARD_WINDOW for shard in train["shards"]) < 2:
        raise InputError(f"{args.stories}: the training shards hold {train['tokens']} tokens, too few for one "
                         f"window of {SHARD_WINDOW} on each of 2 ranks; give more stories")
    ranks = [ShardDataset(shards, "train", max_length=SHARD_WINDOW, seed=args.seed, rank=r, world_size=2)
             for r in range(2)]
    slices = [set(r.order.order(0).tolist()) for r in ranks]
    print(f"   {ranks[0].num_windows} windows of {SHARD_WINDOW} tokens; with 2 ranks each takes {len(ranks[0])} per "
          f"epoch, overlap between ranks: {len(slices[0] & slices[1])} windows")
    ranks[0].next_batch(4)
    state = ranks[0].state_dict()
    resumed = ShardDataset(shards, "train", max_length=SHARD_WINDOW, seed=args.seed, rank=0, world_size=2)
    resumed.load_state_dict(state)
    print(f"   after one batch the state is {{epoch: {state['epoch']}, position: {state['position']}}}; a dataset "
          f"restored from it continues identically: {torch.equal(resumed.next_batch(4)[0], ranks[0].next_batch(4)[0])}")

    print("\n7. Mixing sources by weight, as continued pretraining does: 20% 'domain' windows (story 1),")
    print("   80% 'general' windows (the training shards).")
    mixed = MixedDataset({"domain": GPTDataset(first, SHARD_WINDOW, SHARD_WINDOW),
                          "general": ShardDataset(shards, "train", SHARD_WINDOW)},
                         {"domain": 0.2, "general": 0.8}, seed=args.seed)
    for _ in range(1000):
        mixed.next_window()
    print(f"   1000 windows drawn: {mixed.counts}")

    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.barh(names[::-1], per_story[::-1], color="tab:blue")
    ax.set_xlabel("GPT-2 tokens")
    ax.set_title("Tokens per bundled story")
    for i, n in enumerate(per_story[::-1]):
        ax.text(n, i, f" {n}", va="center", fontsize=8)
    fig.tight_layout()
    save_figure(fig, out / "tokens_per_story.png")
    print(f"\nSaved the figure tokens_per_story.png and the example shards in {out}/")


if __name__ == "__main__":
    main()
