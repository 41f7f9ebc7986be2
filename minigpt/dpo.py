"""Chapter 13: DPO — direct preference optimisation, training the policy on preference pairs without a reward model.

DPO (Rafailov et al., 2023) starts from the instruction model π_ref and trains a copy of it, the policy π, so that for
each pair the chosen answer gains probability relative to the rejected one, measured against the frozen reference:

    loss = −log σ(β · [(log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))])

where log π(c) is the summed log-probability of the chosen answer's tokens given the prompt. β·(log π − log π_ref) is
the "implicit reward" of an answer; their difference is the reward margin, and the share of pairs with a positive
margin the preference accuracy. The reference keeps the policy close to where it started (a small β lets it move
further). The reference is a frozen copy in eval mode, or, when the policy trains LoRA adapters, the policy itself
with its adapters switched off (minigpt.lora.adapters_disabled); its log-probabilities never change, so they can be
computed once and cached with the data.

DPO alone tends to push the rejected answer down faster than it pushes the chosen one up; both log-probabilities can
fall, and the policy's own answers with them. RPO (Pang et al., 2024, "Iterative Reasoning Preference Optimization")
adds the chosen answer's ordinary next-token loss to each pair's: α · (−log π(c) / |c|), its mean negative
log-likelihood per token, so the chosen answers stay likely while the margin grows (alpha=0 is plain DPO).

Read it in this order:
  1. response_logprobs     summed log-probabilities of the answer tokens (targets that are not -100), one per row;
                           AnswerLoss, chapter 9's loss on the answer tokens only, with the same trick
  2. dpo_loss              the formula, per pair, with the implicit rewards (and RPO's term)
  3. DPOLoss               the loss object chapter 6's train() takes (sizes + __call__), logging rewards as it goes
  4. pair_logprobs, cache_reference, frozen_reference   the reference model's side
  5. train_dpo             train() on pair batches: accumulation, clipping, schedule and checkpoints come from there

Out of scope: reinforcement learning. InstructGPT's PPO would sit after the reward model (minigpt/preference.py): the
policy generates answers to prompts, the reward model scores them, and PPO raises the probability of high-scoring
answers while a per-token KL penalty against the reference (the same π_ref as here) keeps it close. It needs sampling
inside the training loop (chapter 6's generate with a KV cache), a value head and advantage estimates (GAE), a
clipped policy-ratio objective over several epochs on each batch of samples, and four models in memory (policy,
value, reward, reference). GRPO drops the value model: it samples a group of answers per prompt and uses each
answer's reward minus the group's mean (divided by its spread) as the advantage. Both would take the reward model and
the reference from this chapter; neither fits in a few CPU minutes, which is why this chapter stops at DPO.
"""
from __future__ import annotations

import contextlib
import copy
import os
from collections.abc import Iterator, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from minigpt.evaluate import logits_at
from minigpt.lora import LoRALinear, adapters_disabled
from minigpt.model import find_gpt
from minigpt.preference import PairDataset, PairMetrics, collate_pairs, pair_loader
from minigpt.train import IGNORE_INDEX, NextTokenLoss, TrainConfig, train


# ------------------------------------------------------------------------------------ 1. log-probabilities

def response_logprobs(model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Σ_t log π(targets[b, t] | inputs[b, :t+1]) over the targets that are not -100: one number per row (batch,).

    With chapter 9's masked collate the targets that remain are the answer's tokens and its end token, so this is
    log π(answer | prompt). Prompt and padding positions add exactly nothing.
    """
    keep = targets != IGNORE_INDEX
    # The output head only where an answer token is predicted (chapter 12's logits_at): the head is the largest
    # matrix product of a small model, and the answer a fifth of a chapter 9 batch.
    logits = logits_at(model, inputs, keep)                         # (kept positions, vocab)
    token_logprobs = -F.cross_entropy(logits.float(), targets[keep], reduction="none")
    rows = torch.arange(len(inputs), device=inputs.device)[:, None].expand_as(targets)[keep]
    return torch.zeros(len(inputs), device=inputs.device).index_add(0, rows, token_logprobs)


def target_counts(targets: torch.Tensor) -> torch.Tensor:
    """How many targets of each row count (are not -100): the answer's tokens and its end token. (batch,)"""
    return (targets != IGNORE_INDEX).sum(dim=1)


class AnswerLoss(NextTokenLoss):
    """Chapter 9's finetuning loss on the answer tokens only (batches from collate_instructions with
    mask_prompt=True), for train(): the same sum of next-token cross-entropies as NextTokenLoss, but the output head
    runs only at the positions that are targets (response_logprobs). With GPT-2's 50,257-token head that is most of
    a small model's work, and an alpaca prompt is two thirds of a record: several times faster on a CPU."""

    def __call__(self, model: nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return -response_logprobs(model, *batch).sum()


# ------------------------------------------------------------------------------------------- 2. the loss

def dpo_loss(policy_chosen: torch.Tensor, policy_rejected: torch.Tensor, reference_chosen: torch.Tensor,
             reference_rejected: torch.Tensor, beta: float = 0.1, *, alpha: float = 0.0,
             chosen_tokens: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(loss, chosen reward, rejected reward) per pair, from summed answer log-probabilities (pairs,).

    reward = β·(log π − log π_ref); loss = −log σ(chosen reward − rejected reward). logsigmoid is computed stably
    (no exp overflow for large margins). With β → 0 the DPO part tends to log 2 and its gradient to 0.
    With `alpha` > 0 (RPO) each loss adds α · (−log π(c) / chosen_tokens): the chosen answer's mean next-token
    negative log-likelihood, `chosen_tokens` (pairs,) being how many tokens log π(c) sums over.
    """
    chosen_reward = beta * (policy_chosen - reference_chosen)
    rejected_reward = beta * (policy_rejected - reference_rejected)
    losses = -F.logsigmoid(chosen_reward - rejected_reward)
    if alpha:
        if chosen_tokens is None:
            raise ValueError("RPO's term (alpha > 0) needs chosen_tokens, the token count of each chosen answer")
        losses = losses - alpha * policy_chosen / chosen_tokens
    return losses, chosen_reward, rejected_reward


@contextlib.contextmanager
def _eval_mode(model: nn.Module) -> Iterator[None]:
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


class DPOLoss:
    """DPO for chapter 6's train(): batches from minigpt.preference.pair_loader, (inputs, targets[, reference]).

    Rows 0..n−1 of a batch are the chosen answers, rows n..2n−1 the rejected ones of the same pairs. Reference
    log-probabilities come from the batch when cached (a third tensor), otherwise from `reference` (a frozen model),
    otherwise from the policy itself with its LoRA adapters switched off. sizes(batch) -> (pairs, tokens); the call
    returns the summed loss over the batch's pairs, and records the implicit rewards in `metrics`. `alpha` > 0 adds
    RPO's term (dpo_loss), the chosen answers' mean next-token loss, to every pair.
    """

    def __init__(self, beta: float = 0.1, reference: nn.Module | None = None, alpha: float = 0.0):
        if not beta > 0:
            raise ValueError(f"beta must be above 0, got {beta}")
        if not alpha >= 0:
            raise ValueError(f"alpha must be 0 or more, got {alpha}")
        self.beta, self.reference, self.alpha = beta, reference, alpha
        self.metrics = PairMetrics()

    def sizes(self, batch: Sequence[torch.Tensor]) -> tuple[int, int]:
        inputs, targets = batch[0], batch[1]
        if inputs.shape != targets.shape or inputs.dim() != 2 or len(inputs) % 2 or len(batch) not in (2, 3):
            raise TypeError("a DPO batch is (inputs, targets[, reference]) with chosen rows then rejected rows; "
                            "see minigpt.preference.collate_pairs")
        return len(inputs) // 2, inputs.numel()

    def reference_logprobs(self, model: nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            if self.reference is not None:
                return response_logprobs(self.reference, inputs, targets)
            with adapters_disabled(model), _eval_mode(model):
                return response_logprobs(model, inputs, targets)

    def __call__(self, model: nn.Module, batch: Sequence[torch.Tensor]) -> torch.Tensor:
        inputs, targets = batch[0], batch[1]
        policy = response_logprobs(model, inputs, targets)
        reference = batch[2].float() if len(batch) == 3 else self.reference_logprobs(model, inputs, targets)
        n = len(inputs) // 2
        losses, chosen_reward, rejected_reward = dpo_loss(policy[:n], policy[n:], reference[:n], reference[n:],
                                                          self.beta, alpha=self.alpha,
                                                          chosen_tokens=target_counts(targets[:n]))
        self.metrics.add(chosen_reward, rejected_reward)
        return losses.sum()


# ------------------------------------------------------------------------------------ 4. the reference side

@torch.no_grad()
def pair_logprobs(model: nn.Module, pairs: PairDataset, batch_size: int = 16) -> torch.Tensor:
    """(pairs, 2): log π(chosen) and log π(rejected) of every pair, in eval mode. Column 0 minus column 1 is the
    policy's own preference (positive: it prefers the chosen answer)."""
    device = next(model.parameters()).device
    context = find_gpt(model).cfg.context_length
    lengths = pairs.lengths()
    order = sorted(range(len(pairs)), key=lambda i: lengths[i])   # similar lengths together: little padding
    out = torch.empty(len(pairs), 2)
    with _eval_mode(model):
        for start in range(0, len(order), batch_size):
            chosen = order[start:start + batch_size]
            batch = collate_pairs([(*pairs.pairs[i], None) for i in chosen], allowed_max_length=context)
            logprobs = response_logprobs(model, batch[0].to(device), batch[1].to(device)).cpu()
            out[chosen, 0], out[chosen, 1] = logprobs[:len(chosen)], logprobs[len(chosen):]
    return out


def frozen_reference(model: nn.Module) -> nn.Module:
    """A copy of `model` that never trains: eval mode (no dropout), no gradients."""
    reference = copy.deepcopy(model).eval()
    reference.requires_grad_(False)
    return reference


def has_lora(model: nn.Module) -> bool:
    return any(isinstance(m, LoRALinear) for m in model.modules())


def cache_reference(pairs: PairDataset, policy: nn.Module, reference: nn.Module | None = None,
                    batch_size: int = 16) -> None:
    """Compute the reference log-probabilities of every pair once and keep them in `pairs` (pairs.reference): batches
    then carry them, and no reference forward pass runs during training. Without `reference`, the policy with its
    LoRA adapters off is the reference."""
    if reference is not None:
        pairs.reference = pair_logprobs(reference, pairs, batch_size)
    else:
        with adapters_disabled(policy):
            pairs.reference = pair_logprobs(policy, pairs, batch_size)


# --------------------------------------------------------------------------------------------- 5. training

def train_dpo(policy: nn.Module, train_pairs: PairDataset, val_pairs: PairDataset | None, config: TrainConfig, *,
              beta: float = 0.1, alpha: float = 0.0, reference: nn.Module | None = None, cache: bool = True,
              batch_size: int = 8,
              seed: int = 123, tokenizer=None, resume: str | os.PathLike | None = None,
              extra: dict | None = None) -> tuple[dict, DPOLoss]:
    """Train `policy` with DPO through chapter 6's train(); returns (train()'s history, the DPOLoss with its metrics).

    `reference`: a frozen model (frozen_reference(policy) before training), or None when the policy has LoRA
    adapters (the reference is then the policy with them off). `cache`: compute the reference log-probabilities
    once before training (one forward pass over the data) instead of at every step. `alpha`: RPO's weight on the
    chosen answers' next-token loss (0: plain DPO).
    """
    if reference is None and not has_lora(policy):
        raise ValueError("DPO needs a reference model: pass reference=frozen_reference(policy), or train LoRA "
                         "adapters so that the policy with its adapters off is the reference")
    # Validation pairs are evaluated again and again, so their reference log-probabilities are always cached.
    for pairs in (train_pairs if cache else None, val_pairs):
        if pairs is not None and pairs.reference is None:
            cache_reference(pairs, policy, reference)
    context = find_gpt(policy).cfg.context_length
    loss = DPOLoss(beta, reference, alpha)
    train_batches = pair_loader(train_pairs, batch_size, shuffle=True, seed=seed, allowed_max_length=context)
    val_batches = None if val_pairs is None or len(val_pairs) == 0 else \
        pair_loader(val_pairs, batch_size, shuffle=False, allowed_max_length=context)
    history = train(policy, train_batches, val_batches, config, loss=loss, tokenizer=tokenizer, resume=resume,
                    extra=extra)
    return history, loss
