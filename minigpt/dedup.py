"""Chapter 10, stage 5: exact and near-duplicate removal with MinHash and locality-sensitive hashing (LSH).

The web repeats itself: the same article on many sites, copies with a changed headline, pages made from one
template. Training on repeats wastes compute and makes a model memorise. Exact copies are easy: hash each
document's normalised text and keep the first of every hash. Near copies need a similarity, and the usual one is
the Jaccard similarity of the documents' shingles (here runs of 5 words): J(A, B) = |A ∩ B| / |A ∪ B|.

Comparing every pair is quadratic (100,000 documents are 5 billion pairs), so:
  1. MinHash: apply k random hash functions to a document's shingles and keep each one's minimum. For two
     documents, one minimum agrees with probability exactly J(A, B), so k minima estimate J, and a document
     becomes a fixed-size signature of k numbers.
  2. LSH banding: cut the signature into b bands of r rows. Two documents become candidates if all r rows of at
     least one band agree, which happens with probability 1 - (1 - J^r)^b: an S-curve in J that is near 0 for
     dissimilar pairs and near 1 for similar ones; b and r are chosen so the curve rises at the threshold.
  3. Verification: every candidate pair's exact Jaccard is computed from the shingles; only pairs at or above
     the threshold count. LSH decides what to look at, never what is a duplicate.
  4. Clusters: verified pairs are joined with union-find; the first document of each cluster is kept.

Read it in this order: exact_key -> ShingleHasher -> jaccard -> MinHasher -> s_curve, choose_bands ->
lsh_candidate_pairs -> UnionFind -> near_duplicates.

The hash family is Carter and Wegman's h(x) = ((a x + b) mod p) mod 2^32 with the Mersenne prime p = 2^61 - 1,
the one datasketch calls its "legacy" scheme; with a, b < 2^32 nothing overflows 64 bits, and the tests check our
signatures against datasketch's bit for bit.
"""
from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from tqdm import tqdm

from minigpt.corpus import words

SHINGLE_WORDS = 5
MERSENNE_PRIME = np.uint64((1 << 61) - 1)
MAX_HASH = np.uint64((1 << 32) - 1)
_ROLL = np.uint64(0x100000001B3)   # an odd 64-bit multiplier for combining word hashes into shingle hashes


# ---------------------------------------------------------------------------------------------------------------
# Exact duplicates

def exact_key(text: str) -> str:
    """A hash of the text with case and whitespace normalised: copies that differ only in spacing share it."""
    return hashlib.sha1(" ".join(text.lower().split()).encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------------------------
# Shingles and their exact Jaccard similarity

class ShingleHasher:
    """Turns a text into the sorted, distinct 64-bit hashes of its shingles (runs of `k` consecutive words).

    Each distinct word is hashed once (BLAKE2b, the same on every machine) and remembered; a shingle's hash
    combines its k word hashes as a polynomial, so all shingles of a document are computed at once with numpy.
    A text shorter than k words has one shingle: all its words. 64 bits make a collision between two different
    shingles so unlikely (about n^2 / 2^65 for n shingles) that these sets stand in for the shingle sets.
    """

    def __init__(self, k: int = SHINGLE_WORDS):
        if k < 1:
            raise ValueError(f"shingles need at least one word, got k={k}")
        self.k = k
        self._word_hash: dict[str, int] = {}

    def _hash_word(self, word: str) -> int:
        value = self._word_hash.get(word)
        if value is None:
            value = int.from_bytes(hashlib.blake2b(word.encode("utf-8"), digest_size=8).digest(), "little")
            self._word_hash[word] = value
        return value

    def __call__(self, text: str) -> np.ndarray:
        hashes = np.array([self._hash_word(w) for w in words(text)], dtype=np.uint64)
        if len(hashes) == 0:
            return hashes
        k = min(self.k, len(hashes))
        n = len(hashes) - k + 1
        shingle = np.zeros(n, dtype=np.uint64)
        for j in range(k):                        # h = ((w0 * R + w1) * R + w2) ... modulo 2^64
            shingle = shingle * _ROLL + hashes[j:j + n]
        return np.unique(shingle)


def jaccard(a: np.ndarray, b: np.ndarray) -> float:
    """|A ∩ B| / |A ∪ B| of two sorted arrays of distinct shingle hashes (1.0 for two empty sets)."""
    if len(a) == 0 and len(b) == 0:
        return 1.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


# ---------------------------------------------------------------------------------------------------------------
# MinHash signatures

@dataclass
class MinHasher:
    """k hash functions h_i(x) = ((a_i x + b_i) mod (2^61 - 1)) mod 2^32, applied to 32-bit shingle values.

    signature[i] = min over the document's shingles of h_i(shingle). P(signature_A[i] == signature_B[i]) is the
    Jaccard similarity of A and B, so the share of agreeing positions estimates it with standard deviation
    sqrt(J (1 - J) / k).
    """
    num_perm: int = 128
    seed: int = 1
    a: np.ndarray = field(init=False, repr=False)
    b: np.ndarray = field(init=False, repr=False)

    def __post_init__(self):
        if self.num_perm < 1:
            raise ValueError(f"num_perm must be at least 1, got {self.num_perm}")
        rng = np.random.default_rng(self.seed)
        self.a = rng.integers(1, 1 << 32, self.num_perm, dtype=np.uint64)
        self.b = rng.integers(0, 1 << 32, self.num_perm, dtype=np.uint64)

    @staticmethod
    def shingle_values(shingles: np.ndarray) -> np.ndarray:
        """The 32-bit inputs of the hash family: the top half of each 64-bit shingle hash."""
        return shingles >> np.uint64(32)

    def signatures(self, shingle_sets: Sequence[np.ndarray], batch: int = 2000,
                   progress: bool = False) -> np.ndarray:
        """(documents, num_perm) uint32 signatures; an empty document's row is all 2^32 - 1 (matches nothing)."""
        out = np.full((len(shingle_sets), self.num_perm), MAX_HASH, dtype=np.uint32)
        bar = tqdm(total=len(shingle_sets), desc="minhash", unit="doc", disable=not progress)
        for first in range(0, len(shingle_sets), batch):
            chunk = [(i, s) for i, s in enumerate(shingle_sets[first:first + batch], first) if len(s)]
            if chunk:
                rows = np.array([i for i, _ in chunk])
                values = self.shingle_values(np.concatenate([s for _, s in chunk]))
                starts = np.concatenate([[0], np.cumsum([len(s) for _, s in chunk])[:-1]])
                # One hash function at a time over the whole batch: the arrays stay small enough for the cache,
                # and minimum.reduceat takes each document's minimum in one call.
                for i in range(self.num_perm):
                    hashed = (values * self.a[i] + self.b[i]) % MERSENNE_PRIME & MAX_HASH
                    out[rows, i] = np.minimum.reduceat(hashed, starts)
            bar.update(min(batch, len(shingle_sets) - first))
        bar.close()
        return out


def estimated_jaccard(signature_a: np.ndarray, signature_b: np.ndarray) -> float:
    return float(np.mean(signature_a == signature_b))


# ---------------------------------------------------------------------------------------------------------------
# LSH: the S-curve and the choice of bands and rows

def s_curve(similarity, bands: int, rows: int):
    """Probability that a pair with this Jaccard similarity shares at least one band: 1 - (1 - s^r)^b."""
    return 1.0 - (1.0 - np.asarray(similarity, dtype=np.float64) ** rows) ** bands


def _integral(f, lo: float, hi: float, points: int = 2001) -> float:
    x = np.linspace(lo, hi, points)
    y = f(x)
    return float(np.sum((y[1:] + y[:-1]) * np.diff(x)) / 2)   # the trapezoid rule


def choose_bands(threshold: float, num_perm: int, false_positive_weight: float = 0.5,
                 false_negative_weight: float = 0.5) -> tuple[int, int]:
    """(bands, rows) with bands * rows <= num_perm minimising the weighted area of LSH's two errors.

    False positives: the area under the S-curve below the threshold (dissimilar pairs that become candidates;
    they only cost verification time). False negatives: the area above the curve beyond the threshold (similar
    pairs never compared: duplicates missed). Same criterion as datasketch's MinHashLSH.
    """
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"the Jaccard threshold must be between 0 and 1, got {threshold}")
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            fp = _integral(lambda s: s_curve(s, bands, rows), 0.0, threshold)
            fn = _integral(lambda s: 1.0 - s_curve(s, bands, rows), threshold, 1.0)
            error = false_positive_weight * fp + false_negative_weight * fn
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


def _band_keys(block: np.ndarray) -> np.ndarray:
    # One 64-bit key per document for this band's r rows. Different rows can share a key only by a 64-bit
    # collision, which costs one extra verification and nothing else.
    key = np.zeros(len(block), dtype=np.uint64)
    for column in block.T.astype(np.uint64):
        key = key * _ROLL + column
    return key


def lsh_candidate_pairs(signatures: np.ndarray, bands: int, rows: int, max_bucket: int = 100) -> np.ndarray:
    """(pairs, 2) array of document indices i < j that agree on all rows of at least one band.

    A bucket of more than `max_bucket` documents (a template repeated many times) pairs each member with the
    bucket's first `max_bucket` members only, so one huge bucket cannot make the number of pairs quadratic.
    """
    if bands * rows > signatures.shape[1]:
        raise ValueError(f"{bands} bands x {rows} rows need {bands * rows} signature values, "
                         f"the signatures have {signatures.shape[1]}")
    usable = np.flatnonzero(~np.all(signatures == MAX_HASH, axis=1))   # empty documents match nothing
    found = []
    for band in range(bands):
        keys = _band_keys(signatures[usable, band * rows:(band + 1) * rows])
        order = np.argsort(keys, kind="stable")
        sorted_keys = keys[order]
        edges = np.flatnonzero(np.diff(sorted_keys)) + 1
        starts = np.concatenate([[0], edges])
        sizes = np.diff(np.concatenate([starts, [len(keys)]]))
        pairs_of_two = starts[sizes == 2]
        found.append(np.stack([order[pairs_of_two], order[pairs_of_two + 1]], axis=1))
        for start, size in zip(starts[sizes > 2], sizes[sizes > 2]):
            members = order[start:start + size]
            left, right = np.triu_indices(size, k=1)
            keep = left < max_bucket
            found.append(np.stack([members[left[keep]], members[right[keep]]], axis=1))
    if not found:
        return np.zeros((0, 2), dtype=np.int64)
    pairs = usable[np.concatenate(found)]
    pairs = np.sort(pairs, axis=1)
    return np.unique(pairs, axis=0)


# ---------------------------------------------------------------------------------------------------------------
# Clusters

class UnionFind:
    """Disjoint sets over 0..n-1 with path halving and union by size: near-constant time per operation."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.size = [1] * n

    def find(self, x: int) -> int:
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]   # point to the grandparent: paths halve each visit
            x = self.parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        a, b = self.find(a), self.find(b)
        if a == b:
            return
        if self.size[a] < self.size[b]:
            a, b = b, a
        self.parent[b] = a
        self.size[a] += self.size[b]

    def groups(self) -> list[list[int]]:
        """All sets with more than one member, each sorted, in order of their smallest member."""
        members: dict[int, list[int]] = {}
        for x in range(len(self.parent)):
            members.setdefault(self.find(x), []).append(x)
        return sorted((m for m in members.values() if len(m) > 1), key=lambda m: m[0])


@dataclass
class NearDuplicates:
    bands: int
    rows: int
    candidates: int                          # pairs LSH proposed
    verified: list[tuple[int, int, float]]   # pairs at or above the threshold, with their exact Jaccard
    clusters: list[list[int]]                # each sorted; its first member is the one kept
    duplicate_of: dict[int, int]             # removed document -> the kept document of its cluster
    jaccard_to_kept: dict[int, float]


def near_duplicates(shingle_sets: Sequence[np.ndarray], threshold: float = 0.8, num_perm: int = 128,
                    bands: int | None = None, rows: int | None = None, false_negative_weight: float = 0.9,
                    seed: int = 1, progress: bool = False) -> NearDuplicates:
    """Find near-duplicate clusters: MinHash, LSH candidates, exact-Jaccard verification, union-find.

    Without bands and rows they are chosen from the threshold with a missed duplicate weighted
    `false_negative_weight` against 1 - that for a false candidate: a false candidate costs one exact Jaccard,
    a miss leaves a duplicate in the training data. With 0.9, threshold 0.8 and 128 permutations this gives
    14 bands of 9 rows: pairs at J = 0.85 become candidates with probability 0.975, at J = 0.8 with 0.867.
    """
    if (bands is None) != (rows is None):
        raise ValueError("give both bands and rows, or neither (then they are chosen from the threshold)")
    if bands is None:
        bands, rows = choose_bands(threshold, num_perm, 1.0 - false_negative_weight, false_negative_weight)
    signatures = MinHasher(num_perm, seed).signatures(shingle_sets, progress=progress)
    candidates = lsh_candidate_pairs(signatures, bands, rows)
    verified = []
    for i, j in tqdm(candidates.tolist(), desc="verifying", unit="pair", disable=not progress):
        similarity = jaccard(shingle_sets[i], shingle_sets[j])
        if similarity >= threshold:
            verified.append((i, j, similarity))
    clusters = UnionFind(len(shingle_sets))
    for i, j, _ in verified:
        clusters.union(i, j)
    groups = clusters.groups()
    duplicate_of, to_kept = {}, {}
    for group in groups:
        for member in group[1:]:
            duplicate_of[member] = group[0]
            to_kept[member] = jaccard(shingle_sets[member], shingle_sets[group[0]])
    return NearDuplicates(bands, rows, len(candidates), verified, groups, duplicate_of, to_kept)


__all__ = ["SHINGLE_WORDS", "exact_key", "ShingleHasher", "jaccard", "MinHasher", "estimated_jaccard", "s_curve",
           "choose_bands", "lsh_candidate_pairs", "UnionFind", "NearDuplicates", "near_duplicates"]
