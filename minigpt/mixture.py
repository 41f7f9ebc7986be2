"""Chapter 10, stage 6: mixing sources: tokens, weights, and how many epochs each source is seen for.

A training run has a token budget (GPT-3: 300 billion tokens) and several sources of very different sizes. A
source's weight is the share of the budget drawn from it, so it is seen for

    epochs = weight * budget / tokens in the source

GPT-3 drew 60% of its 300B tokens from 410B tokens of filtered Common Crawl (0.44 epochs: most of it never seen)
and 3% from 3B tokens of Wikipedia (3.0 epochs by this formula; the paper lists 3.4 because its printed weights
and token counts are rounded: 3.4 epochs at 3% means 2.65B tokens, which prints as "3 billion"). The same
arithmetic plans continued pretraining: a domain share of 10-15%, or general:domain as 4:1 (20% domain), with
instruction data mixed in (MIP). minigpt.data.MixedDataset then draws windows with these weights (chapter 6's
--mix "dirA:0.8,dirB:0.2").

Read it in this order: SourceShare -> mixture -> weights_from_ratio -> GPT3 and gpt3_table -> rounding_interval.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class SourceShare:
    name: str
    tokens: float       # tokens the source holds
    weight: float       # share of the training budget drawn from it
    budget: float       # total training tokens

    @property
    def drawn(self) -> float:
        return self.weight * self.budget

    @property
    def epochs(self) -> float:
        return self.drawn / self.tokens


def mixture(tokens: Mapping[str, float], weights: Mapping[str, float], budget: float,
            normalise: bool = True) -> list[SourceShare]:
    """One SourceShare per source. With normalise=True the weights are scaled to sum to 1 (a plan); with False
    they are used as given (to reproduce a published table whose rounded weights do not sum to 1)."""
    if set(tokens) != set(weights):
        raise ValueError(f"tokens and weights must name the same sources: {sorted(tokens)} vs {sorted(weights)}")
    if any(t <= 0 for t in tokens.values()):
        raise ValueError(f"every source needs a positive number of tokens, got {dict(tokens)}")
    total = sum(weights.values())
    if total <= 0 or any(w < 0 for w in weights.values()):
        raise ValueError(f"weights must be non-negative and not all zero, got {dict(weights)}")
    scale = 1.0 / total if normalise else 1.0
    return [SourceShare(name, float(tokens[name]), weights[name] * scale, float(budget)) for name in tokens]


def weights_from_ratio(ratio: Mapping[str, float]) -> dict[str, float]:
    """{"general": 4, "domain": 1} -> {"general": 0.8, "domain": 0.2}."""
    total = sum(ratio.values())
    if total <= 0:
        raise ValueError(f"a ratio needs a positive part, got {dict(ratio)}")
    return {name: part / total for name, part in ratio.items()}


def budget_for_epochs(tokens: float, weight: float, epochs: float) -> float:
    """The training budget at which a source with this weight is seen `epochs` times."""
    return epochs * tokens / weight


# GPT-3's training mixture (Brown et al. 2020, Table 2.2): tokens, weight in the training mix, and "epochs
# elapsed when training for 300B tokens", exactly as printed.
GPT3_BUDGET = 300e9
GPT3 = [
    ("Common Crawl (filtered)", 410e9, 0.60, 0.44),
    ("WebText2", 19e9, 0.22, 2.9),
    ("Books1", 12e9, 0.08, 1.9),
    ("Books2", 55e9, 0.08, 0.43),
    ("Wikipedia", 3e9, 0.03, 3.4),
]


def rounding_interval(tokens: float, weight: float, budget: float, token_step: float = 1e9,
                      weight_step: float = 0.01) -> tuple[float, float]:
    """The range of epochs consistent with a table that rounds tokens to `token_step` and weights to
    `weight_step`: the true values lie within half a step of the printed ones."""
    low = (weight - weight_step / 2) * budget / (tokens + token_step / 2)
    high = (weight + weight_step / 2) * budget / (tokens - token_step / 2)
    return low, high


def gpt3_table() -> list[dict]:
    """GPT-3's rows recomputed: our epochs from the printed numbers, the paper's, and whether rounding explains
    the difference (the paper's epochs inside the interval that rounding allows)."""
    rows = []
    for (name, tokens, weight, paper_epochs), share in zip(GPT3, mixture(
            {n: t for n, t, _, _ in GPT3}, {n: w for n, _, w, _ in GPT3}, GPT3_BUDGET, normalise=False)):
        low, high = rounding_interval(tokens, weight, GPT3_BUDGET)
        rows.append({"source": name, "tokens": tokens, "weight": weight, "epochs": share.epochs,
                     "paper_epochs": paper_epochs, "rounding_low": low, "rounding_high": high,
                     "explained_by_rounding": low <= paper_epochs <= high,
                     "weight_implied_by_paper": paper_epochs * tokens / GPT3_BUDGET,
                     "tokens_implied_by_paper": weight * GPT3_BUDGET / paper_epochs})
    return rows


def mix_argument(folders: Mapping[str, str], weights: Mapping[str, float]) -> str:
    """Chapter 6's --mix value: "folderA:0.8,folderB:0.2" (weights normalised, in the order of `folders`)."""
    total = sum(weights[name] for name in folders)
    return ",".join(f"{folder}:{weights[name] / total:.4g}" for name, folder in folders.items())


__all__ = ["SourceShare", "mixture", "weights_from_ratio", "budget_for_epochs", "GPT3", "GPT3_BUDGET",
           "rounding_interval", "gpt3_table", "mix_argument"]
