"""Chapter 11, part 2: growing a model for an extended vocabulary, and continued pretraining on a mix of texts.

A model knows its vocabulary through two matrices with one row per token id: the token embedding (what a token means
on the way in) and the output head (how to score it on the way out); GPT-2 ties them into one. Extending the tokenizer
(minigpt/vocab.py) adds ids after the old ones, so growing the model adds rows at the end of both, and every old row
stays where it is: the grown model computes exactly the old model's logits on old ids, plus scores for the new tokens.

A new row starts as the mean of the rows of the tokens it is made of (its bytes encoded with the old tokenizer), so
"编码" starts near the average of its six byte pieces rather than at random. Continued pretraining then runs in two
stages, as Chinese-LLaMA did: first only the new rows learn (every other weight frozen, and a gradient mask on the
old rows of the shared matrix), so the network adapts the new tokens to itself before it is disturbed; then everything
trains on a mix of domain and general text, with chapter 2's MixedDataset choosing the source of each window. The
domain share is the knob: more of it learns the new language faster and forgets the old text faster.

Losses per token cannot be compared across tokenizers (a tokenizer with longer tokens makes fewer, harder
predictions), so held-out text is scored in bits per byte (minigpt/metrics.py).

Read it in this order:
  1. token_pieces, grow_model          the new rows and their initialisation
  2. train_only_new_rows, train_all    freezing with a gradient mask, and undoing it
  3. mixture                           domain + general windows at a chosen share
  4. token_bytes, held_out_score       loss per token and bits per byte of held-out windows
"""
from __future__ import annotations

from dataclasses import replace

import torch
import torch.nn as nn

from minigpt.data import GPTDataset, MixedDataset
from minigpt.metrics import bits_per_byte
from minigpt.model import GPTModel
from minigpt.tokenizer import BPETokenizer, bpe_by_rank
from minigpt.train import evaluate
from minigpt.vocab import check_extends, mergeable_ranks


# --------------------------------------------------------------------------------------------- 1. new rows

def token_pieces(token: bytes, old_ranks: dict[bytes, int]) -> list[int]:
    """The old ids for the bytes of one (new) token, encoded by rank: what it is made of. old_ranks is
    minigpt.vocab.mergeable_ranks(old tokenizer)."""
    return [old_ranks[part] for part in bpe_by_rank(token, old_ranks)]


def grow_model(model: GPTModel, old: BPETokenizer, new: BPETokenizer) -> GPTModel:
    """A copy of `model` with new.vocab_size rows in its token embedding and output head (tied if they were tied).

    Old rows are copied unchanged; each new row is the mean of the old rows of its pieces (token_pieces), in the
    embedding and, when the head is not tied, in the head. The copy is on the model's device, in its dtype.
    """
    check_extends(old, new)
    if model.cfg.vocab_size != old.vocab_size:
        raise ValueError(f"the model has {model.cfg.vocab_size:,} token rows but its tokenizer {old.vocab_size:,} "
                         f"ids (a padded vocabulary?): new ids would land on rows that already exist")
    tied = model.out_head.weight is model.tok_emb.weight
    old_ranks = mergeable_ranks(old)
    pieces = [(i, token_pieces(new.vocab[i], old_ranks)) for i in range(old.vocab_size, new.vocab_size)
              if new.vocab[i] is not None]

    def grown(rows: torch.Tensor) -> torch.Tensor:
        out = torch.empty((new.vocab_size, rows.shape[1]), dtype=rows.dtype, device=rows.device)
        out[:old.vocab_size] = rows
        for i, parts in pieces:
            # The mean in float64, rounded once: the same row whatever the dtype of the model.
            out[i] = rows[parts].double().mean(0).to(rows.dtype)
        return out

    state = {name: tensor.detach() for name, tensor in model.state_dict().items()}
    with torch.no_grad():
        state["tok_emb.weight"] = grown(state["tok_emb.weight"])
        state["out_head.weight"] = state["tok_emb.weight"] if tied else grown(state["out_head.weight"])
    parameter = model.tok_emb.weight
    with torch.device("meta"):   # the skeleton only: every tensor comes from `state`
        bigger = GPTModel(replace(model.cfg, vocab_size=new.vocab_size))
    bigger.load_state_dict(state, assign=True)
    if tied:
        bigger.out_head.weight = bigger.tok_emb.weight   # one Parameter in two places, as GPTModel(cfg) has it
    bigger.train(model.training)
    return bigger.to(device=parameter.device)


# --------------------------------------------------------------------------------------------- 2. freezing

def train_only_new_rows(model: GPTModel, first_new_id: int) -> list:
    """Freeze every weight but the token rows from `first_new_id` on; returns the hooks (pass them to train_all).

    The embedding (and an untied head) must stay trainable as whole tensors, so a hook multiplies their gradient by
    a mask that is 0 on the old rows: AdamW then sees a zero gradient there at every step, its moments stay zero and
    those rows do not move. (Weight decay would still shrink them: minigpt decays no embedding, but an untied head
    is a decayed matrix, so train this stage with weight_decay=0.)
    """
    for parameter in model.parameters():
        parameter.requires_grad_(False)
    hooks = []
    for table in {id(p): p for p in (model.tok_emb.weight, model.out_head.weight)}.values():
        mask = torch.zeros(table.shape[0], 1, dtype=table.dtype, device=table.device)
        mask[first_new_id:] = 1
        table.requires_grad_(True)
        hooks.append(table.register_hook(lambda grad, mask=mask: grad * mask))
    return hooks


def train_all(model: GPTModel, hooks: list) -> None:
    """Undo train_only_new_rows: remove the gradient masks and make every weight trainable again."""
    for hook in hooks:
        hook.remove()
    for parameter in model.parameters():
        parameter.requires_grad_(True)


# --------------------------------------------------------------------------------------------- 3. mixing

def mixture(domain: GPTDataset, general: GPTDataset, domain_share: float, seed: int = 123) -> MixedDataset:
    """Windows drawn from `domain` with probability domain_share and from `general` otherwise (chapter 2's mixing)."""
    if not 0.0 <= domain_share <= 1.0:
        raise ValueError(f"domain_share must be between 0 and 1, got {domain_share}")
    return MixedDataset({"domain": domain, "general": general},
                        {"domain": domain_share, "general": 1.0 - domain_share}, seed=seed)


# --------------------------------------------------------------------------------------------- 4. scoring

def token_bytes(tokenizer) -> torch.Tensor:
    """UTF-8 length of every token id, as a tensor indexed by id (a BPETokenizer or a tiktoken Encoding).

    A special token counts as the bytes of its text (<|endoftext|>: 13), the same under every tokenizer that has it.
    """
    if isinstance(tokenizer, BPETokenizer):
        lengths = [len(tokenizer.decode_bytes([i])) for i in range(tokenizer.vocab_size)]
    else:
        lengths = [len(tokenizer.decode_single_token_bytes(i)) for i in range(tokenizer.n_vocab)]
    return torch.tensor(lengths, dtype=torch.long)


def held_out_score(model: nn.Module, batches: list, lengths: torch.Tensor) -> dict[str, float]:
    """Mean loss per predicted token (nats) and bits per byte over `batches` (lengths: token_bytes(tokenizer)).

    The bytes are those of the predicted (target) tokens only: each window's first input is given, not predicted,
    so its bytes are not counted, which is what makes the number the same however the text was tokenized.
    """
    loss, _ = evaluate(model, batches)
    targets = sum(int(y.numel()) for _, y in batches)
    num_bytes = sum(int(lengths[y].sum()) for _, y in batches)
    return {"loss": loss, "bits_per_byte": bits_per_byte(loss * targets, num_bytes), "targets": targets,
            "bytes": num_bytes}
