"""Chapter 10: from raw web text to a clean training corpus: extraction, language ID, rule filters, quality
scoring, exact and near-duplicate removal, and mixing sources by weight.

Runs offline on the bundled messy corpus (data/corpus, ground truth included) in about a minute on a 2-core CPU:
    python chapters/ch10_corpus.py
Your own data (files or folders of .txt, .html and .jsonl with "text", or "completion" + "source"):
    python chapters/ch10_corpus.py --input crawl/ more.jsonl --out out/mine --lang en --prepare
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from minigpt import langid, quality
from minigpt.corpus import CorpusInputError, InputProblem, read_documents, repair_mojibake
from minigpt.corpus_pipeline import (LABELS, STAGES, Settings, evaluate_fillers, score_stages, funnel_rows, load_labels,
                                     reason_kind, run_pipeline, write_outputs)
from minigpt.dedup import choose_bands, s_curve
from minigpt.files import atomic_open, save_figure
from minigpt.filters import default_rules
from minigpt.mixture import gpt3_table, mix_argument, mixture, weights_from_ratio
from minigpt.tokenizer import gpt2_tiktoken_encoding

RAW = Path(__file__).resolve().parent.parent / "data" / "corpus" / "raw"
DEFAULT_INPUTS = [RAW / "web", RAW / "wiki", RAW / "crawl.jsonl", RAW / "dialogue.jsonl", RAW / "instructions.jsonl"]
SKIPPABLE = ("langid", "rules", "fillers", "quality", "exact_dup", "near_dup")


class OneLineParser(argparse.ArgumentParser):
    """Bad options end the run with one line naming the option, and exit status 2."""

    def error(self, message: str):
        self.exit(2, f"error: {message}\n")


def parse_args(argv=None) -> argparse.Namespace:
    p = OneLineParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                      epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--input", nargs="+", metavar="PATH", help="files or folders (default: the bundled corpus)")
    p.add_argument("--source", help="source name for every document (default: folder name or file stem; a jsonl "
                                    "record's own \"source\" field still wins)")
    p.add_argument("--out", default="out/ch10", help="folder for kept.jsonl, removed.jsonl, report.json, figures")
    p.add_argument("--labels", help="ground-truth labels (jsonl: id, expect) for precision/recall; default: the "
                                    "bundled labels when reading the bundled corpus, else none")
    p.add_argument("--on-error", choices=("skip", "fail"), default="skip",
                   help="bad input (unreadable file, invalid JSON, no text): report and skip it, or stop")
    p.add_argument("--lang", default="en,zh", help="languages to keep, comma-separated (known: en, zh, fr, de, es)")
    p.add_argument("--min-lang-probability", type=float, default=0.5)
    p.add_argument("--max-broken-chars", type=int, default=2, help="mojibake sequences + U+FFFD a document may have")
    p.add_argument("--rule", action="append", default=[], metavar="NAME=VALUE",
                   help="change a rule's threshold, e.g. --rule min_words=50 (repeatable)")
    p.add_argument("--quality-threshold", type=float, default=0.5, help="minimum P(good) of the quality classifier")
    p.add_argument("--dedup-threshold", type=float, default=0.8, help="Jaccard of 5-word shingles")
    p.add_argument("--num-perm", type=int, default=128, help="MinHash permutations")
    for stage in SKIPPABLE:
        p.add_argument(f"--no-{stage.replace('_', '-')}", action="store_true", help=f"skip the {stage} stage")
    p.add_argument("--budget", type=float, default=0, help="training tokens for the mixing plan (default: 10x kept)")
    p.add_argument("--prepare", action="store_true", help="also write token shards per source for chapter 6 --mix")
    p.add_argument("--seed", type=int, default=1, help="seed of the MinHash functions")
    p.add_argument("--examples", type=int, default=1, help="examples printed per removal reason")
    args = p.parse_args(argv)
    for name, low, high in (("min_lang_probability", 0, 1), ("quality_threshold", 0, 1), ("dedup_threshold", 0, 1)):
        if not low < getattr(args, name) < high and not (name != "dedup_threshold" and getattr(args, name) == 0):
            p.error(f"--{name.replace('_', '-')} must be in ({low}, {high}), got {getattr(args, name)}")
    if args.num_perm < 1:
        p.error(f"--num-perm must be at least 1, got {args.num_perm}")
    if args.max_broken_chars < 0:
        p.error(f"--max-broken-chars must be at least 0, got {args.max_broken_chars}")
    known = sorted({lang for lang, _ in langid.load_language_samples()})
    unknown = {x.strip() for x in args.lang.split(",") if x.strip()} - set(known)
    if unknown:
        p.error(f"--lang names {', '.join(sorted(unknown))}, which the identifier does not know "
                f"(it knows {', '.join(known)})")
    args.thresholds = {}
    rule_names = [r.name for r in default_rules()]
    for item in args.rule:
        name, _, value = item.partition("=")
        try:
            args.thresholds[name] = float(value)
        except ValueError:
            p.error(f"--rule expects NAME=NUMBER, got {item!r}")
        if name not in rule_names:
            p.error(f"--rule: no rule named {name!r}; rules: {', '.join(rule_names)}")
    return args


def print_funnel(result) -> None:
    print(f"\n{'stage':<10} {'docs in':>8} {'docs out':>9} {'tokens in':>10} {'tokens out':>11}   removed because")
    for row in funnel_rows(result):
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].items()) or "-"
        if "skipped" in row["reasons"]:
            reasons = "(stage skipped)"
        print(f"{row['stage']:<10} {row['docs_in']:>8,} {row['docs_out']:>9,} {row['tokens_in']:>10,} "
              f"{row['tokens_out']:>11,}   {reasons}")


def save_funnel_png(result, path: Path) -> None:
    rows = funnel_rows(result)
    labels = ["input"] + [r["stage"] for r in rows]
    docs = [rows[0]["docs_in"]] + [r["docs_out"] for r in rows]
    tokens = [rows[0]["tokens_in"]] + [r["tokens_out"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for ax, values, title in ((axes[0], docs, "documents"), (axes[1], tokens, "GPT-2 tokens")):
        ax.barh(labels[::-1], values[::-1], color="tab:blue")
        for i, v in enumerate(values[::-1]):
            ax.text(v, i, f" {v:,}", va="center", fontsize=8)
        ax.set_title(f"{title} left after each stage")
        ax.set_xlim(0, max(values) * 1.25)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def save_s_curve_png(threshold: float, num_perm: int, bands: int, rows: int, path: Path) -> None:
    s = np.linspace(0, 1, 201)
    fig, ax = plt.subplots(figsize=(6, 4))
    for b, r in ((bands, rows), choose_bands(threshold, num_perm)):
        ax.plot(s, s_curve(s, b, r), label=f"{b} bands x {r} rows")
    ax.axvline(threshold, color="grey", ls="--", lw=1, label=f"threshold {threshold}")
    ax.set_xlabel("Jaccard similarity of a pair")
    ax.set_ylabel("P(pair becomes an LSH candidate)")
    ax.set_title("LSH S-curve: 1 - (1 - s^r)^b")
    ax.legend()
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    plt.close(fig)


def print_examples(result, documents: dict, per_reason: int) -> None:
    print("\nExamples of each removal (first characters of the text as it reached the stage):")
    shown: dict[tuple[str, str], int] = {}
    for removal in result.removed:
        key = (removal.stage, reason_kind(removal.reason))
        if shown.get(key, 0) >= per_reason:
            continue
        shown[key] = shown.get(key, 0) + 1
        text = " ".join(documents[removal.id].split())[:110]
        print(f"  [{removal.stage}] {removal.id}: {removal.reason}\n      {text!r}")


def print_cluster(result, documents: dict) -> None:
    if not result.clusters:
        print("\nNo near-duplicate clusters were found.")
        return
    cluster = max(result.clusters, key=len)
    jaccards = {r.id: r.jaccard for r in result.removed if r.stage == "near_dup"}
    print(f"\nA near-duplicate cluster ({len(cluster)} documents; {cluster[0]} is kept):")
    for doc_id in cluster:
        note = "kept" if doc_id == cluster[0] else f"Jaccard {jaccards[doc_id]:.2f} with the kept one"
        print(f"  {doc_id} ({note}): {' '.join(documents[doc_id].split())[:100]!r}")


def print_evaluation(result, labels: dict) -> dict:
    report = score_stages(result, labels)
    print(f"\nAgainst the ground truth ({len(labels):,} labels): accuracy {report['accuracy']:.4f}")
    print(f"  {'stage':<10} {'removed':>8} {'labelled':>9} {'precision':>10} {'recall':>8}")
    for stage, row in report["per_stage"].items():
        said = row.get("removed", row.get("kept"))
        p = "-" if row["precision"] is None else f"{row['precision']:.3f}"
        r = "-" if row["recall"] is None else f"{row['recall']:.3f}"
        print(f"  {stage:<10} {said:>8} {row['labelled']:>9} {p:>10} {r:>8}")
    if report["mistakes"]:
        print("  mistakes (labelled stage -> what happened): "
              + ", ".join(f"{k} x{v}" for k, v in report["mistakes"].items()))
    fillers = evaluate_fillers(result, labels)
    report["fillers"] = fillers
    print(f"  fillers: {fillers['fillers_removed']} removed, {fillers['fillers_inserted']} inserted by the "
          f"generator; {fillers['cleaned_exactly']} of {fillers['dialogues']} kept dialogues equal their clean text")
    return report


def plan_mixture(result, budget: float) -> dict:
    """Tokens per source after cleaning, weights from a general:domain ratio, epochs for the budget."""
    tokens: dict[str, int] = {}
    for doc in result.kept:
        tokens[doc.source] = tokens.get(doc.source, 0) + doc.tokens
    budget = budget or 10 * sum(tokens.values())
    # The articles' ratios: general:domain 4:1 overall, with instruction data (MIP) a small part of the domain share.
    domain = {"dialogue", "instructions"}
    general = [s for s in tokens if s not in domain]
    weights = {}
    split = weights_from_ratio({"general": 4, "domain": 1})
    for s in general:
        weights[s] = split["general"] * tokens[s] / sum(tokens[g] for g in general)
    present = [s for s in tokens if s in domain]
    for s in present:
        weights[s] = split["domain"] * (0.75 if s == "dialogue" else 0.25) if len(present) == 2 else split["domain"]
    if not general or not present:
        weights = {s: tokens[s] / sum(tokens.values()) for s in tokens}   # one kind only: weight by size
    shares = mixture(tokens, weights, budget)
    print(f"\nMixing the kept sources for a budget of {budget:,.0f} tokens "
          f"(general:domain = 4:1, instructions a quarter of the domain share):")
    print(f"  {'source':<14} {'tokens':>9} {'weight':>7} {'drawn':>11} {'epochs':>7}")
    for sh in shares:
        print(f"  {sh.name:<14} {sh.tokens:>9,.0f} {sh.weight:>7.1%} {sh.drawn:>11,.0f} {sh.epochs:>7.2f}")
    return {"budget": budget, "sources": [{"source": sh.name, "tokens": sh.tokens, "weight": sh.weight,
                                           "epochs": sh.epochs} for sh in shares]}


def print_gpt3() -> list[dict]:
    print("\nGPT-3's mixture recomputed (300B training tokens): epochs = weight x 300B / tokens")
    print(f"  {'source':<24} {'tokens':>6} {'weight':>6} {'epochs':>6} {'paper':>6}   rounding allows")
    rows = gpt3_table()
    for r in rows:
        verdict = "yes" if r["explained_by_rounding"] else "NO"
        print(f"  {r['source']:<24} {r['tokens'] / 1e9:>5.0f}B {r['weight']:>6.0%} {r['epochs']:>6.2f} "
              f"{r['paper_epochs']:>6}   {r['rounding_low']:.2f}-{r['rounding_high']:.2f}: {verdict}")
    wiki = rows[-1]
    print(f"  Wikipedia: 3% x 300B / 3B = {wiki['epochs']:.1f} epochs; the paper's 3.4 means "
          f"{wiki['tokens_implied_by_paper'] / 1e9:.2f}B tokens at 3% (printed as 3B) or a weight of "
          f"{wiki['weight_implied_by_paper']:.1%} (printed as 3%): the table's numbers are rounded.")
    print(f"  The printed weights sum to {sum(r['weight'] for r in rows):.0%}, another sign of rounding; WebText2's "
          f"2.9 is outside what rounding allows (22% x 300B / 19B = {rows[1]['epochs']:.2f}).")
    return rows


def prepare(result, out: Path, plan: dict) -> None:
    from minigpt.prepare import prepare_shards
    by_source: dict[str, list] = {}
    for doc in result.kept:
        by_source.setdefault(doc.source, []).append(doc)
    folders, weights = {}, {}
    for source, docs in by_source.items():
        path = out / "by_source" / f"{source}.jsonl"
        with atomic_open(path) as f:
            for doc in docs:
                f.write(json.dumps({"id": doc.id, "text": doc.text}, ensure_ascii=False) + "\n")
        print(f"  {source}: {len(docs)} documents")
        prepare_shards([path], out / "shards" / source, val_fraction=0.05, progress=False)
        folders[source] = str(out / "shards" / source)
    weights = {row["source"]: row["weight"] for row in plan["sources"]}
    print(f"  train on them with the plan's weights:\n  python chapters/ch06_pretraining.py --mix "
          f"\"{mix_argument(folders, weights)}\"")


def main(argv=None) -> None:
    args = parse_args(argv)
    started = time.perf_counter()
    out = Path(args.out)
    inputs = args.input or DEFAULT_INPUTS
    settings = Settings(langs=tuple(x.strip() for x in args.lang.split(",") if x.strip()),
                        min_lang_probability=args.min_lang_probability, max_broken_chars=args.max_broken_chars,
                        rule_thresholds=args.thresholds, fillers=not args.no_fillers,
                        quality_threshold=args.quality_threshold, dedup_threshold=args.dedup_threshold,
                        num_perm=args.num_perm, seed=args.seed,
                        skip=frozenset(s for s in SKIPPABLE if getattr(args, f"no_{s}")))

    print("1. Reading the inputs (HTML pages go through the standard library's HTMLParser).")
    problems: list[InputProblem] = []
    try:
        docs = list(read_documents(inputs, args.source, args.on_error, problems))
    except CorpusInputError as e:
        sys.exit(f"error: {e}  (use --on-error skip to report bad input and go on)")
    for problem in problems:
        print(f"   bad input, skipped: {problem}")
    if not docs:
        sys.exit("error: the inputs hold no documents")
    originals = {d.id: d.text for d in docs}
    print(f"   {len(docs):,} documents from {len(inputs)} inputs; sources: "
          + ", ".join(f"{s} {n}" for s, n in sorted(_count(d.source for d in docs).items())))

    print("2. Training the language identifier and the quality classifier on the bundled samples.")
    lid = langid.train_default()
    test = langid.load_language_samples(split="test")
    right = sum(lid.predict(text)[0] == lang for lang, text in test)
    print(f"   language ID: {len(lid.languages)} languages, {len(lid.index):,} n-grams; held-out sentences: "
          f"{right}/{len(test)} right")
    scorer = quality.train_default()
    held_out = quality.evaluate(scorer, *quality.load_quality_examples(split="test"))
    print(f"   quality: held-out precision {held_out.precision:.3f}, recall {held_out.recall:.3f} for 'poor' "
          f"({held_out.n} documents)")


    print("3. Running the stages: " + " -> ".join(STAGES))
    encoding = gpt2_tiktoken_encoding()
    try:
        result = run_pipeline(docs, settings, lid, scorer, encoding)
    except ValueError as e:     # e.g. a --rule name that no rule has
        sys.exit(f"error: {e}")
    result.problems = problems
    print_funnel(result)
    stage_texts = dict(originals)
    print_examples(result, stage_texts, args.examples)
    mojibake = next((r for r in result.removed if "mojibake" in r.reason), None)
    if mojibake:
        text = originals[mojibake.id]
        bad = text.find("\u00e2\u20ac")
        if bad >= 0:
            print(f"   (mojibake can often be repaired: {text[bad - 20:bad + 20]!r} -> "
                  f"{repair_mojibake(text[bad - 20:bad + 20])!r})")
    dialogue = next((d for d in result.kept if d.source == "dialogue"), None)
    if dialogue and not settings.skip & {"fillers"}:
        print(f"\nFiller words removed from dialogue ({result.fillers_removed} in all), e.g. {dialogue.id}:\n"
              f"   before: {originals[dialogue.id][:80]!r}\n   after:  {dialogue.text[:80]!r}")
    print_cluster(result, {d.id: originals[d.id] for d in docs})

    bands, rows = choose_bands(settings.dedup_threshold, settings.num_perm, 0.1, 0.9)
    print(f"\nLSH: threshold {settings.dedup_threshold}, {settings.num_perm} permutations -> {bands} bands x {rows} "
          f"rows; P(candidate) at J=0.7/0.8/0.85/0.9: "
          + "/".join(f"{float(s_curve(j, bands, rows)):.3f}" for j in (0.7, 0.8, 0.85, 0.9)))

    labels_path = args.labels or (LABELS if args.input is None else None)
    evaluation = print_evaluation(result, load_labels(labels_path)) if labels_path else None
    gpt3 = print_gpt3()
    plan = plan_mixture(result, args.budget)

    report = {"inputs": [str(i) for i in inputs], "settings": {**vars(settings), "skip": sorted(settings.skip)},
              "input_problems": [str(p) for p in problems], "funnel": funnel_rows(result),
              "fillers_removed": result.fillers_removed, "near_duplicate_clusters": result.clusters,
              "lsh": {"bands": bands, "rows": rows}, "evaluation": evaluation,
              "quality_held_out": vars(held_out), "langid_held_out": {"right": right, "of": len(test)},
              "gpt3": gpt3, "mixture": plan}
    paths = write_outputs(result, out, report)
    save_funnel_png(result, out / "funnel.png")
    save_s_curve_png(settings.dedup_threshold, settings.num_perm, bands, rows, out / "s_curve.png")
    print(f"\nWrote {', '.join(p.name for p in paths.values())}, funnel.png and s_curve.png in {out}/")
    if args.prepare:
        print("Preparing token shards per source (minigpt.prepare.prepare_shards):")
        prepare(result, out, plan)
    print(f"Done in {time.perf_counter() - started:.0f} s.")


def _count(items) -> dict:
    counts: dict = {}
    for item in items:
        counts[item] = counts.get(item, 0) + 1
    return counts


if __name__ == "__main__":
    main()
