"""Benchmark of chapter 10's deduplication (minigpt/dedup.py) on 100,000 generated documents, beside datasketch.

    python -m minigpt.bench_dedup                      # 100,000 documents of ~1 KB; about a minute with datasketch
    python -m minigpt.bench_dedup --docs 20000 --no-datasketch

The documents are made of words drawn from a Zipf-like distribution over 20,000 generated words, so unrelated
documents share almost no 5-word shingles. Into them are planted exact copies and edited copies of other
documents whose exact Jaccard similarity (measured here on Python sets of word tuples, independently of
minigpt.dedup's hashing) spans 0.5 to 1.0. Measured: time per phase, recall per similarity bin (a planted pair
is found when both documents land in one cluster), precision (removed documents that really are copies), and
datasketch's MinHash + MinHashLSH on the same documents and shingles (its default hashing: SHA-1 of each
shingle, its "affine32" permutations) with the same bands and rows. Results: minigpt/CORPUS_RESULTS.md.
This is a measurement script, not a test: timings depend on the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

from minigpt.dedup import ShingleHasher, exact_key, near_duplicates, choose_bands, SHINGLE_WORDS
from minigpt.files import write_text_atomic

BINS = [0.5, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95, 1.0001]


def make_documents(n_docs: int, n_near: int, n_exact: int, seed: int = 0):
    """(texts, planted) where planted lists (original index, copy index, exact Jaccard of the pair)."""
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    vocabulary = ["".join(rng.choice(letters, rng.integers(3, 9))) for _ in range(20_000)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1) ** 0.8
    weights /= weights.sum()
    n_base = n_docs - n_near - n_exact
    lengths = rng.integers(150, 190, n_base)                      # ~170 words of ~5 letters: ~1 KB
    drawn = rng.choice(len(vocabulary), size=int(lengths.sum()), p=weights)
    docs, at = [], 0
    for length in lengths:
        docs.append(drawn[at:at + length])
        at += length
    planted = []
    for k in range(n_near):
        base = int(rng.integers(n_base))
        target = 0.5 + 0.5 * k / n_near
        words = docs[base].copy()
        shingles = len(words) - SHINGLE_WORDS + 1
        edits = max(1, int(round(shingles * (1 - target) / (SHINGLE_WORDS * (1 + target)))))
        words[rng.choice(len(words), edits, replace=False)] = rng.choice(len(vocabulary), edits)
        docs.append(words)
        planted.append((base, len(docs) - 1))
    for _ in range(n_exact):
        base = int(rng.integers(n_base))
        docs.append(docs[base])
        planted.append((base, len(docs) - 1))
    texts = [" ".join(vocabulary[i] for i in d) for d in docs]
    order = rng.permutation(len(texts))                          # copies anywhere, not only at the end
    position = np.empty_like(order)
    position[order] = np.arange(len(order))
    texts = [texts[i] for i in order]
    labelled = []
    for a, b in planted:
        sa, sb = _tuple_shingles(texts[position[a]]), _tuple_shingles(texts[position[b]])
        labelled.append((int(position[a]), int(position[b]), len(sa & sb) / len(sa | sb)))
    return texts, labelled


def _tuple_shingles(text: str) -> set:
    w = text.split()
    return {tuple(w[i:i + SHINGLE_WORDS]) for i in range(len(w) - SHINGLE_WORDS + 1)}


def run_minigpt(texts: list[str], threshold: float, num_perm: int, bands: int, rows: int) -> dict:
    times = {}
    started = time.perf_counter()
    keys = [exact_key(t) for t in texts]
    first: dict[str, int] = {}
    exact_of = {}
    for i, key in enumerate(keys):
        if key in first:
            exact_of[i] = first[key]
        else:
            first[key] = i
    times["exact dedup"] = time.perf_counter() - started
    survivors = [i for i in range(len(texts)) if i not in exact_of]
    started = time.perf_counter()
    hasher = ShingleHasher()
    shingle_sets = [hasher(texts[i]) for i in survivors]
    times["shingling"] = time.perf_counter() - started
    started = time.perf_counter()
    result = near_duplicates(shingle_sets, threshold, num_perm, bands, rows)
    times["minhash + lsh + verify + clusters"] = time.perf_counter() - started
    cluster_of = {}
    for i in range(len(texts)):
        cluster_of[i] = exact_of.get(i, i)
    for member, kept in result.duplicate_of.items():
        cluster_of[survivors[member]] = survivors[kept]
    # Exact copies of a near-duplicate share its cluster: follow the chain to the representative.
    for i in range(len(texts)):
        root = cluster_of[i]
        while cluster_of[root] != root:
            root = cluster_of[root]
        cluster_of[i] = root
    removed = [i for i in range(len(texts)) if cluster_of[i] != i]
    return {"times": times, "cluster_of": cluster_of, "removed": removed, "candidates": result.candidates,
            "verified": len(result.verified)}


def run_datasketch(texts: list[str], threshold: float, num_perm: int, bands: int, rows: int) -> dict | None:
    try:
        from datasketch import MinHash, MinHashLSH
    except ImportError:
        print("datasketch is not installed (pip install datasketch); skipping the comparison")
        return None
    started = time.perf_counter()
    lsh = MinHashLSH(num_perm=num_perm, params=(bands, rows))
    signatures = []
    for i, text in enumerate(texts):
        w = text.split()
        m = MinHash(num_perm=num_perm)
        m.update_batch([" ".join(w[j:j + SHINGLE_WORDS]).encode("utf-8") for j in range(len(w) - SHINGLE_WORDS + 1)])
        signatures.append(m)
    minhash_time = time.perf_counter() - started
    started = time.perf_counter()
    pairs = set()
    for i, m in enumerate(signatures):
        for j in lsh.query(m):
            pairs.add((j, i))
        lsh.insert(i, m)
    return {"times": {"minhash (sha1 per shingle)": minhash_time, "lsh insert + query": time.perf_counter() - started},
            "pairs": pairs}


def recall_table(planted, found) -> list[dict]:
    rows = []
    for lo, hi in zip(BINS, BINS[1:]):
        in_bin = [(a, b) for a, b, j in planted if lo <= j < hi]
        hits = sum(found(a, b) for a, b in in_bin)
        rows.append({"jaccard": f"{lo:.2f}-{min(hi, 1.0):.2f}", "pairs": len(in_bin),
                     "found": hits, "share": hits / len(in_bin) if in_bin else float("nan")})
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--docs", type=int, default=100_000, help="documents in all, copies included")
    parser.add_argument("--near", type=int, default=5_000, help="planted edited copies (Jaccard 0.5-1.0)")
    parser.add_argument("--exact", type=int, default=1_000, help="planted exact copies")
    parser.add_argument("--threshold", type=float, default=0.8)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--no-datasketch", action="store_true")
    parser.add_argument("--out", default="out/bench_dedup.json", help="where to save the numbers (JSON)")
    args = parser.parse_args(argv)
    if args.near + args.exact >= args.docs:
        parser.exit(2, "error: --near plus --exact must be fewer than --docs\n")

    started = time.perf_counter()
    texts, planted = make_documents(args.docs, args.near, args.exact)
    size = sum(map(len, texts))
    print(f"{len(texts):,} documents, {size / 1e6:.1f} MB (mean {size / len(texts):.0f} characters), "
          f"{len(planted):,} planted pairs; generated in {time.perf_counter() - started:.1f} s")
    bands, rows = choose_bands(args.threshold, args.num_perm, 0.1, 0.9)
    print(f"threshold {args.threshold}, {args.num_perm} permutations -> {bands} bands x {rows} rows")

    ours = run_minigpt(texts, args.threshold, args.num_perm, bands, rows)
    total = sum(ours["times"].values())
    print("\nminigpt.dedup:")
    for phase, seconds in ours["times"].items():
        print(f"  {phase:<36} {seconds:6.1f} s")
    print(f"  {'total':<36} {total:6.1f} s   ({len(texts) / total:,.0f} documents/s)")
    print(f"  LSH candidates {ours['candidates']:,}, verified {ours['verified']:,}")
    cluster_of = ours["cluster_of"]
    table = recall_table(planted, lambda a, b: cluster_of[a] == cluster_of[b])
    copies = {b for _, b, _ in planted} | {a for a, _, _ in planted}
    true_removed = sum(1 for i in ours["removed"] if i in copies)
    precision = true_removed / max(len(ours["removed"]), 1)
    print(f"  removed {len(ours['removed']):,} documents; precision {precision:.4f} (removed documents that are "
          f"planted originals or copies)")
    print("  recall by exact Jaccard of the planted pair:")
    for row in table:
        print(f"    {row['jaccard']}: {row['found']:5d} / {row['pairs']:5d} = {row['share']:.3f}")
    at_least = [(a, b) for a, b, j in planted if j >= 0.85]
    recall_85 = sum(cluster_of[a] == cluster_of[b] for a, b in at_least) / max(len(at_least), 1)
    print(f"  recall at Jaccard >= 0.85: {recall_85:.4f}")

    results = {"machine": {"platform": platform.platform(), "processor": platform.processor(),
                           "cpus": os.cpu_count(), "python": sys.version.split()[0], "numpy": np.__version__},
               "documents": len(texts), "megabytes": size / 1e6, "bands": bands, "rows": rows,
               "minigpt": {"times": ours["times"], "total": total, "candidates": ours["candidates"],
                           "verified": ours["verified"], "removed": len(ours["removed"]), "precision": precision,
                           "recall_at_0.85": recall_85, "recall_by_bin": table}}
    if not args.no_datasketch:
        theirs = run_datasketch(texts, args.threshold, args.num_perm, bands, rows)
        if theirs:
            import datasketch
            their_total = sum(theirs["times"].values())
            print(f"\ndatasketch {datasketch.__version__} (same documents, shingles, bands and rows):")
            for phase, seconds in theirs["times"].items():
                print(f"  {phase:<36} {seconds:6.1f} s")
            print(f"  {'total':<36} {their_total:6.1f} s   ({len(texts) / their_total:,.0f} documents/s)")
            pairs = theirs["pairs"]
            their_table = recall_table(planted, lambda a, b: (min(a, b), max(a, b)) in pairs)
            print("  candidate recall by exact Jaccard (before any verification):")
            for row in their_table:
                print(f"    {row['jaccard']}: {row['found']:5d} / {row['pairs']:5d} = {row['share']:.3f}")
            results["datasketch"] = {"version": datasketch.__version__, "times": theirs["times"],
                                     "total": their_total, "candidates": len(pairs), "recall_by_bin": their_table}
    write_text_atomic(args.out, json.dumps(results, indent=1))
    print(f"\nsaved {args.out}")


if __name__ == "__main__":
    main()
