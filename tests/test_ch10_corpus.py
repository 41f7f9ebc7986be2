"""Chapter 10 tests: extraction, normalisation, language ID, rule filters, fillers, quality, dedup, mixing, CLI.

References are independent of the code under test: hand-written expected text and hand-labelled rule cases
(English and Chinese), Python's own codecs for mojibake, exact fractions for naive Bayes, finite differences for
the logistic-regression gradient, Python sets of word tuples for Jaccard, datasketch (bit-exact MinHash
signatures, its band/row optimiser), langdetect (seed fixed) for language ID, breadth-first search for clusters,
and the ground-truth labels that data/corpus/make_corpus.py writes beside the corpus.
"""
import importlib.util
import json
import random
import subprocess
import sys
import zlib
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest

from tests._impl import load_impl

corpus = load_impl("minigpt.corpus")
langid = load_impl("minigpt.langid")
filters = load_impl("minigpt.filters")
quality = load_impl("minigpt.quality")
dedup = load_impl("minigpt.dedup")
mixture = load_impl("minigpt.mixture")
pipeline = load_impl("minigpt.corpus_pipeline")

ROOT = Path(__file__).resolve().parent.parent
CORPUS = ROOT / "data" / "corpus"
RAW = CORPUS / "raw"
SCRIPT = ROOT / "chapters" / "ch10_corpus.py"


def labels():
    return {json.loads(line)["id"]: json.loads(line) for line in (CORPUS / "labels.jsonl").open(encoding="utf-8")}


# ---------------------------------------------------------------------------------------------------------------
# Stage 1: reading, extraction, normalisation

PAGE = """<!DOCTYPE html><html><head><title>Ignored title</title><style>p { color: red }</style>
<script>var x = "<p>not text</p>";</script></head>
<body><header>Site name</header><nav><a href="/">Home</a> <a href="/a">About</a></nav>
<div class="cookie-banner">We use cookies. <button>OK</button></div>
<main><h1>A   heading</h1>
<p>First paragraph, with <b>bold</b> and an &amp; sign.<p>Second paragraph
spread over two lines.</p>
<ul><li>one item<li>another item</ul>
<div id="share-bar">Share on social media</div></main>
<aside>Related posts</aside><footer>&copy; 2024. All rights reserved.</footer></body></html>"""


def test_html_extraction_keeps_headings_and_paragraphs_and_drops_boilerplate():
    # Hand-written expectation: unclosed <p> and <li> end their block, entities are decoded, whitespace collapses.
    assert corpus.html_to_text(PAGE) == ("A heading\n\nFirst paragraph, with bold and an & sign.\n\n"
                                         "Second paragraph spread over two lines.\n\none item\n\nanother item")


def test_html_extraction_recovers_every_bundled_article_exactly():
    truth = labels()
    pages = list(corpus.read_documents([RAW / "web"]))
    checked = 0
    for doc in pages:
        label = truth[doc.id]
        if label["kind"] == "article":
            assert corpus.normalise(doc.text).text == corpus.normalise(label["article"]).text, doc.id
            checked += 1
        elif label["kind"] == "empty_page":
            assert doc.text == "", doc.id
    assert checked >= 80


def test_normalise_folds_compatibility_forms_removes_controls_and_keeps_chinese_punctuation():
    result = corpus.normalise("ＡＢＣ１２３ ﬁne ① caf\u0065\u0301\u200b\x07 done\r\n甲：好，走吧？  \n\n\n\nend")
    # NFKC by hand: full-width letters/digits -> ASCII, ligature -> two letters, circled one -> 1, e + combining
    # acute -> é; the zero-width space (Cf) and BEL (Cc) are removed; CJK full-width punctuation stays.
    assert result.text == "ABC123 fine 1 café done\n甲：好，走吧？\n\nend"
    assert result.controls_removed == 2
    assert result.mojibake == [] and result.replacement_chars == 0


@pytest.mark.parametrize("clean, codec", [("café résumé naïve", "cp1252"), ("It’s “quoted” — yes…", "cp1252"),
                                         ("Straße, Ångström, señor", "cp1252"), ("emoji 🙂 ok", "latin-1")])
def test_mojibake_found_where_pythons_codec_made_it_and_repaired_back(clean, codec):
    broken = clean.encode("utf-8").decode(codec, errors="replace")   # the mistake, made by Python's own codec
    assert corpus.mojibake_sequences(broken), broken
    if "\ufffd" not in broken:   # cp1252 has no character for byte 0x9D (in "”"): that one is lost for good
        assert corpus.repair_mojibake(broken) == clean


@pytest.mark.parametrize("clean", ["café résumé naïve", "It’s “quoted” — yes…", "Straße, Ångström, señor",
                                   "中文的文本也一样。", "emoji 🙂 ok", "Ã la carte"])
def test_clean_text_is_never_flagged_as_mojibake(clean):
    # Accents, curly quotes, CJK and emoji are what UTF-8 is for; "Ã l" does not re-encode to valid UTF-8.
    assert corpus.mojibake_sequences(clean) == []


def test_bundled_mojibake_documents_are_all_flagged_and_no_other_document_is():
    truth = labels()
    for doc in corpus.read_documents([RAW / "crawl.jsonl"], problems=[]):
        flagged = bool(corpus.normalise(doc.text).mojibake)
        assert flagged == (truth[doc.id]["kind"] == "mojibake"), doc.id


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def test_reading_reports_bad_input_with_file_and_line_and_can_refuse_it(tmp_path):
    folder = tmp_path / "site"
    write(folder / "a.txt", "plain text")
    write(folder / "sub" / "b.html", "<p>html text</p>")
    write(folder / "notes.csv", "x,y")
    jsonl = write(tmp_path / "records.jsonl", "\n".join([
        '{"id": "r1", "text": "one"}', '{"text": broken', '{"id": "r3", "title": "no text"}',
        '{"completion": "four", "source": "dialogue"}', '[1, 2]', '']))
    problems = []
    docs = list(corpus.read_documents([folder, jsonl, tmp_path / "missing.txt"], problems=problems))
    assert [(d.id, d.source, d.text) for d in docs] == [
        ("site/a.txt", "site", "plain text"), ("site/sub/b.html", "site", "html text"),
        ("r1", "records", "one"), ("records.jsonl:4", "dialogue", "four")]
    assert [p.location for p in problems] == [str(folder / "notes.csv"), f"{jsonl}:2", f"{jsonl}:3", f"{jsonl}:5",
                                              str(tmp_path / "missing.txt")]
    renamed = list(corpus.read_documents([folder], source="mine", problems=[]))
    assert {d.source for d in renamed} == {"mine"}
    with pytest.raises(corpus.CorpusInputError, match=f"{jsonl}:2"):
        list(corpus.read_documents([jsonl], on_error="fail"))


def test_words_treat_each_cjk_character_as_a_word():
    assert corpus.words("Hello, World 42! 你好世界。A股") == ["hello", "world", "42", "你", "好", "世", "界", "a", "股"]


# ---------------------------------------------------------------------------------------------------------------
# Stage 2: language identification

def test_naive_bayes_scores_equal_a_hand_computation_with_fractions():
    model = langid.NaiveBayesLangID(orders=(1,), alpha=1).fit([("x", "aab"), ("y", "bbb")])
    # Unigrams of " aab " are a:2, b:1 (spaces dropped); of " bbb ": b:3. Vocabulary {a, b} + 1 unseen = 3.
    p = {"x": {"a": Fraction(3, 6), "b": Fraction(2, 6), "c": Fraction(1, 6)},
         "y": {"a": Fraction(1, 6), "b": Fraction(4, 6), "c": Fraction(1, 6)}}
    text = "abc c"   # a:1, b:1, c:2 (c unseen in both)
    expected = [np.log(float(p[lang]["a"] * p[lang]["b"] * p[lang]["c"] ** 2)) for lang in ("x", "y")]
    np.testing.assert_allclose(model.log_likelihoods(text), expected, rtol=1e-12)
    assert model.predict("aaa")[0] == "x" and model.predict("bbb")[0] == "y"


@pytest.fixture(scope="module")
def lid():
    return langid.train_default()


def test_language_id_on_held_out_sentences_beside_langdetect(lid):
    langdetect = pytest.importorskip("langdetect")
    langdetect.DetectorFactory.seed = 0   # langdetect samples n-grams at random: the seed makes it repeatable
    test = langid.load_language_samples(split="test")
    ours = [lid.predict(text)[0] for _, text in test]
    theirs = [langdetect.detect(text).split("-")[0] for _, text in test]   # "zh-cn" -> "zh"
    truth = [lang for lang, _ in test]
    our_accuracy = np.mean([a == b for a, b in zip(ours, truth)])
    their_accuracy = np.mean([a == b for a, b in zip(theirs, truth)])
    # 100 sentences written apart from the training samples: one mistake is 1%. We ask for 95%, and for no more
    # than 3 points below langdetect, which was trained on Wikipedia in 55 languages.
    assert our_accuracy >= 0.95 and our_accuracy >= their_accuracy - 0.03, (our_accuracy, their_accuracy)


def test_language_id_without_letters_says_so(lid):
    assert lid.predict("12345 !!! ★★★") == ("", 0.0)


# ---------------------------------------------------------------------------------------------------------------
# Stage 3: rule filters (hand-labelled cases) and filler words

GOOD_EN = ("The library in the old school building opens at nine. On Saturday mornings a group of parents brings "
           "their children for songs and picture books, and the reading room upstairs is quiet enough to work in. "
           "Volunteers repair damaged books in a small workshop behind the desk.")
GOOD_ZH = ("周末有很多家长带着孩子来公园放风筝。老人们在湖边打太极拳，动作又慢又稳。公园的东门旁边有一家小茶馆，"
           "价格不贵，环境也很安静。下午常常有人在亭子里下象棋，旁边还围着不少看热闹的人。")
GOOD_FR = ("Le marché de la ville ouvre chaque samedi matin. Les fruits de saison sont moins chers et ont plus de "
           "goût, et le boulanger du quartier prépare le pain avant le lever du soleil pour les habitants.")

BAD = [   # (rule that must fail, text, language)
    ("min_words", "Page not found.", "en"),
    ("min_words", "页面不存在。", "zh"),
    ("banned_words", GOOD_EN + " Visit our casino tonight.", "en"),
    ("banned_words", GOOD_ZH + "欢迎来到在线赌场。", "zh"),
    ("symbol_ratio", " ".join(w + " ★★★ !!!" for w in GOOD_EN.split()[:40]), "en"),
    ("symbol_ratio", "".join(c + "！！" for c in GOOD_ZH[:40]), "zh"),
    ("hash_ellipsis_ratio", " ".join(f"#tag{i} word" for i in range(40)), "en"),
    ("ellipsis_lines", "\n".join(s[:40] + "..." for s in GOOD_EN.split(". ")) + "\nA full line of text here.", "en"),
    ("bullet_lines", "\n".join("• " + w + " and the rest of the item" for w in GOOD_EN.split()[:12]), "en"),
    ("mean_word_length", " ".join(["a b c d e of the to and"] * 6), "en"),
    ("max_mean_word_length", " ".join(["the", "https://example.com/verylongpathsegment/anotherone"] * 20), "en"),
    ("alphabetic_words", "the and of " + " ".join(str(i) for i in range(60)), "en"),
    ("stop_words", " ".join(["asdf qwer zxcv uiop hjkl"] * 10), "en"),
    ("stop_words", "一二三四五六七八九十" * 5, "zh"),
    ("duplicate_lines", "\n".join([GOOD_EN[:60], GOOD_EN[60:120]] * 4), "en"),
    ("duplicate_paragraphs", "\n\n".join([GOOD_EN, GOOD_FR] * 3), "en"),
    ("top_2gram", " ".join(["cheap flights"] * 30 + ["to", "the", "of", "and"]), "en"),
    ("duplicate_5grams", (GOOD_EN + " ") * 3, "en"),
    ("duplicate_5grams", GOOD_ZH * 3, "zh"),
]


@pytest.mark.parametrize("rule_name, text, lang", BAD, ids=[f"{b[0]}-{b[2]}-{i}" for i, b in enumerate(BAD)])
def test_each_rule_catches_its_hand_labelled_case(rule_name, text, lang):
    rule = next(r for r in filters.default_rules() if r.name == rule_name)
    assert rule.failure(filters.Analysed(text, lang)) is not None, rule_name


@pytest.mark.parametrize("text, lang", [(GOOD_EN, "en"), (GOOD_ZH, "zh"), (GOOD_FR, "fr")])
def test_good_english_chinese_and_french_pass_every_rule(text, lang):
    # Chinese has no spaces: with characters as words it is 100+ words long, mean word length does not apply,
    # and its own stop words (的, 了, 是, 在 ...) count.
    assert filters.first_failure(text, lang) is None


def test_chinese_measures_are_per_character():
    t = filters.Analysed(GOOD_ZH, "zh")
    assert filters.word_count(t) == sum(1 for c in GOOD_ZH if "\u4e00" <= c <= "\u9fff")
    assert filters.mean_word_length(t) is None
    assert filters.stop_word_count(t) >= 2


def test_ngram_measures_equal_a_brute_force_count():
    text = "a b c a b c a b d e f g h a b"
    t = filters.Analysed(text)
    w = text.split()
    # Top 2-gram "a b" occurs 4 times; each covers 2 characters of the 15 word characters.
    assert filters.top_ngram_share(2)(t) == pytest.approx(4 * 2 / 15)
    # Repeated 5-grams: "a b c a b" (positions 0 and 3) and "b c a b c" ... mark covered positions by brute force.
    covered = set()
    for i in range(len(w) - 4):
        if sum(w[j:j + 5] == w[i:i + 5] for j in range(len(w) - 4)) > 1:
            covered |= set(range(i, i + 5))
    assert filters.duplicate_ngram_share(5)(t) == pytest.approx(len(covered) / len(w))


def test_rule_thresholds_can_be_changed_by_name_and_unknown_names_are_refused():
    rules = filters.with_thresholds(filters.default_rules(), {"min_words": 2})
    assert filters.first_failure("Page not found.", "en", rules)[0] != "min_words"
    with pytest.raises(ValueError, match="no rule named min_wrds"):
        filters.with_thresholds(filters.default_rules(), {"min_wrds": 2})


FILLERS = [   # (dialogue, the same without fillers, fillers)
    ("甲：嗯嗯，我们走吧。\n乙：好啊，走。", "甲：我们走吧。\n乙：好啊，走。", 1),
    ("甲：呃，那个，明天见。\n乙：嗯嗯嗯，啊啊，好的。", "甲：那个，明天见。\n乙：好的。", 3),
    ("A: Um, I think so.\nB: Uh, maybe. We need an umbrella, um, today.",
     "A: I think so.\nB: Maybe. We need an umbrella, today.", 3),
    ("A: Hmm, the drummer left.\nB: Erm, yes.", "A: The drummer left.\nB: Yes.", 2),
]


@pytest.mark.parametrize("noisy, clean, count", FILLERS)
def test_fillers_are_removed_and_real_words_kept(noisy, clean, count):
    assert filters.looks_like_dialogue(noisy)
    got, n = filters.remove_fillers(noisy)
    # A capital letter after a removed sentence-initial English filler is a detail we do not restore: compare
    # case-insensitively at line starts only where the hand-written clean text differs by that.
    assert [line.lower() for line in got.split("\n")] == [line.lower() for line in clean.split("\n")] and n == count


def test_every_bundled_dialogue_is_cleaned_to_its_ground_truth():
    truth = labels()
    for doc in corpus.read_documents([RAW / "dialogue.jsonl"]):
        cleaned, n = filters.remove_fillers(corpus.normalise(doc.text).text)
        assert cleaned == corpus.normalise(truth[doc.id]["clean"]).text and n == truth[doc.id]["fillers"], doc.id


# ---------------------------------------------------------------------------------------------------------------
# Stage 4: quality classifier

def test_hashed_features_are_crc32_slots_with_unit_length():
    features = quality.hashed_features("the cat the", dimension=1 << 10)
    expected = {}
    for gram in ["the", "cat", "the", "the cat", "cat the"]:
        slot = zlib.crc32(gram.encode()) % (1 << 10)
        expected[slot] = expected.get(slot, 0) + 1
    values = {s: np.log1p(c) for s, c in expected.items()}
    norm = np.sqrt(sum(v * v for v in values.values()))
    assert features.keys() == values.keys()
    for slot in features:
        assert features[slot] == pytest.approx(values[slot] / norm, rel=1e-12)


def test_logistic_gradient_equals_finite_differences():
    rng = np.random.default_rng(0)
    rows = [{int(s): float(rng.normal()) for s in rng.choice(20, 5, replace=False)} for _ in range(8)]
    X = quality.SparseRows(rows)
    y = rng.integers(0, 2, 8).astype(float)
    w, b, l2 = rng.normal(size=20), 0.3, 0.01
    _, grad_w, grad_b = quality.log_loss_and_gradient(X, y, w, b, l2)
    eps = 1e-6   # central differences in float64: error ~eps^2 * third derivative, far below the 1e-6 tolerance
    numeric = []
    for i in range(20):
        step = np.zeros(20)
        step[i] = eps
        numeric.append((quality.log_loss_and_gradient(X, y, w + step, b, l2)[0]
                        - quality.log_loss_and_gradient(X, y, w - step, b, l2)[0]) / (2 * eps))
    np.testing.assert_allclose(grad_w, numeric, atol=1e-6)
    numeric_b = (quality.log_loss_and_gradient(X, y, w, b + eps, l2)[0]
                 - quality.log_loss_and_gradient(X, y, w, b - eps, l2)[0]) / (2 * eps)
    assert grad_b == pytest.approx(numeric_b, abs=1e-6)


@pytest.fixture(scope="module")
def scorer():
    return quality.train_default()


def test_quality_classifier_precision_and_recall_on_held_out_examples(scorer):
    result = quality.evaluate(scorer, *quality.load_quality_examples(split="test"))
    # 300 held-out documents (150 poor): the floor is a few mistakes below what it reaches (see CORPUS_RESULTS.md).
    assert result.n == 300 and result.precision >= 0.95 and result.recall >= 0.95, result


# ---------------------------------------------------------------------------------------------------------------
# Stage 5: deduplication

def random_text(rng: random.Random, n: int, cjk: bool = False) -> str:
    if cjk:
        return "".join(rng.choice("的一是在不了有和人这中大为上个国我以要他时来用们生到作地于出就分对成会可主发年动")
                       for _ in range(n))
    return " ".join(rng.choice(["alpha", "beta", "gamma", "delta", "eps", "zeta", "eta", "theta"]) for _ in range(n))


def tuple_shingles(text: str, k: int = 5) -> set:
    w = corpus.words(text)
    return {tuple(w[i:i + k]) for i in range(len(w) - k + 1)} if len(w) >= k else {tuple(w)}


@pytest.mark.parametrize("cjk", [False, True])
def test_shingle_jaccard_equals_python_sets_of_word_tuples(cjk):
    rng = random.Random(1)
    hasher = dedup.ShingleHasher()
    for _ in range(20):
        a = random_text(rng, rng.randint(3, 60), cjk)
        b = a[: len(a) // 2] + random_text(rng, rng.randint(3, 30), cjk)
        sa, sb = tuple_shingles(a), tuple_shingles(b)
        assert len(hasher(a)) == len(sa)
        assert dedup.jaccard(hasher(a), hasher(b)) == pytest.approx(len(sa & sb) / len(sa | sb), abs=1e-12)


def test_minhash_signatures_equal_datasketch_bit_for_bit():
    datasketch = pytest.importorskip("datasketch")
    hasher, minhasher = dedup.ShingleHasher(), dedup.MinHasher(num_perm=64, seed=3)
    texts = [random_text(random.Random(i), 80) for i in range(5)] + [GOOD_ZH]
    ours = minhasher.signatures([hasher(t) for t in texts], batch=4)
    for text, signature in zip(texts, ours):
        reference = datasketch.MinHash(num_perm=64, scheme="legacy", permutations=(minhasher.a, minhasher.b),
                                       hashfunc=lambda v: v)
        reference.update_batch([int(v) for v in minhasher.shingle_values(hasher(text))])
        assert np.array_equal(reference.hashvalues, signature.astype(np.uint64))


def test_minhash_estimate_is_within_its_standard_error_of_exact_jaccard():
    rng = random.Random(2)
    hasher, minhasher = dedup.ShingleHasher(), dedup.MinHasher(num_perm=256)
    for _ in range(10):
        a = random_text(rng, 200)
        words = a.split()
        for i in rng.sample(range(len(words)), rng.randint(1, 25)):
            words[i] = "changed"
        b = " ".join(words)
        sa, sb = hasher(a), hasher(b)
        exact = dedup.jaccard(sa, sb)
        estimate = dedup.estimated_jaccard(*minhasher.signatures([sa, sb]))
        # Each position agrees with probability J: the estimate's standard deviation is sqrt(J(1-J)/k). Five of
        # them fail by chance about once in 1.7 million: ten pairs never should.
        assert abs(estimate - exact) <= 5 * np.sqrt(exact * (1 - exact) / 256) + 1e-9


@pytest.mark.parametrize("threshold, num_perm", [(0.5, 64), (0.8, 128), (0.9, 128), (0.7, 256)])
def test_band_and_row_choice_equals_datasketch_optimiser(threshold, num_perm):
    lsh = pytest.importorskip("datasketch.lsh")
    for weights in ((0.5, 0.5), (0.1, 0.9)):
        assert dedup.choose_bands(threshold, num_perm, *weights) == lsh._optimal_param(threshold, num_perm, *weights)


def test_lsh_candidates_equal_brute_force_band_comparison():
    rng = np.random.default_rng(0)
    signatures = rng.integers(0, 4, size=(60, 12)).astype(np.uint32)   # few values: many bands collide
    bands, rows = 4, 3
    expected = {(i, j) for i in range(60) for j in range(i + 1, 60)
                if any(np.array_equal(signatures[i, b * rows:(b + 1) * rows], signatures[j, b * rows:(b + 1) * rows])
                       for b in range(bands))}
    got = {tuple(p) for p in dedup.lsh_candidate_pairs(signatures, bands, rows).tolist()}
    assert got == expected


def test_s_curve_matches_a_monte_carlo_of_banding():
    rng = np.random.default_rng(0)
    bands, rows, s = 14, 9, 0.85
    # A band matches when all its rows do, each with probability s: simulate 20,000 pairs.
    matches = (rng.random((20_000, bands, rows)) < s).all(axis=2).any(axis=1).mean()
    assert matches == pytest.approx(float(dedup.s_curve(s, bands, rows)), abs=4 * np.sqrt(0.03 / 20_000))


def test_union_find_clusters_equal_breadth_first_components():
    rng = random.Random(0)
    n, edges = 200, [(rng.randrange(200), rng.randrange(200)) for _ in range(150)]
    uf = dedup.UnionFind(n)
    for a, b in edges:
        uf.union(a, b)
    neighbours = {i: set() for i in range(n)}
    for a, b in edges:
        neighbours[a].add(b)
        neighbours[b].add(a)
    seen, components = set(), []
    for start in range(n):
        if start in seen:
            continue
        queue, component = [start], set()
        while queue:
            x = queue.pop()
            if x not in component:
                component.add(x)
                queue.extend(neighbours[x] - component)
        seen |= component
        if len(component) > 1:
            components.append(sorted(component))
    assert uf.groups() == sorted(components, key=lambda c: c[0])


def test_near_duplicates_finds_planted_copies_and_reports_only_verified_pairs():
    rng = random.Random(5)
    hasher = dedup.ShingleHasher()
    vocabulary = [f"w{i}" for i in range(3000)]
    texts = [" ".join(rng.choice(vocabulary) for _ in range(150)) for _ in range(300)]
    planted = []
    for k in range(40):
        base = rng.randrange(300)
        words = texts[base].split()
        for i in rng.sample(range(150), rng.randint(0, 6)):
            words[i] = rng.choice(vocabulary)
        texts.append(" ".join(words))
        planted.append((base, len(texts) - 1))
    sets = [hasher(t) for t in texts]
    result = dedup.near_duplicates(sets, threshold=0.8)
    for i, j, similarity in result.verified:
        assert similarity >= 0.8 and similarity == dedup.jaccard(sets[i], sets[j])
    cluster = {m: g[0] for g in result.clusters for m in g}
    high = [(a, b) for a, b in planted if dedup.jaccard(sets[a], sets[b]) >= 0.9]
    # At J >= 0.9 the 14x9 S-curve gives 0.999: each missed pair has probability 0.001.
    assert high and all(cluster.get(a, a) == cluster.get(b, b) for a, b in high)
    assert all(kept < member for member, kept in result.duplicate_of.items())   # the first document is kept


def test_exact_key_ignores_case_and_spacing_only():
    assert dedup.exact_key("Hello  world.\n") == dedup.exact_key("hello world.")
    assert dedup.exact_key("Hello world.") != dedup.exact_key("Hello world!")


# ---------------------------------------------------------------------------------------------------------------
# Stage 6: mixing

def test_gpt3_table_epochs_and_why_wikipedia_reads_3_4():
    rows = {r["source"]: r for r in mixture.gpt3_table()}
    assert rows["Common Crawl (filtered)"]["epochs"] == pytest.approx(0.6 * 300 / 410)
    wiki = rows["Wikipedia"]
    assert wiki["epochs"] == pytest.approx(3.0)
    # Printed weights round to 1% and tokens to 1B: 2.5-3.5% of 300B over 2.5-3.5B tokens allows 2.14-4.2 epochs.
    assert wiki["rounding_low"] == pytest.approx(0.025 * 300 / 3.5) and wiki["rounding_high"] == pytest.approx(4.2)
    assert wiki["explained_by_rounding"] and wiki["tokens_implied_by_paper"] == pytest.approx(0.03 * 300e9 / 3.4)
    assert not rows["WebText2"]["explained_by_rounding"]   # 22% x 300 / 19 = 3.47; 2.9 is outside 3.31-3.65


def test_mixture_weights_and_epochs():
    weights = mixture.weights_from_ratio({"general": 4, "domain": 1})
    assert weights == pytest.approx({"general": 0.8, "domain": 0.2})
    shares = {s.name: s for s in mixture.mixture({"general": 1000, "domain": 50}, weights, budget=500)}
    assert shares["general"].epochs == pytest.approx(0.4) and shares["domain"].epochs == pytest.approx(2.0)
    assert mixture.mix_argument({"general": "a", "domain": "b"}, {"general": 8, "domain": 2}) == "a:0.8,b:0.2"


# ---------------------------------------------------------------------------------------------------------------
# The whole pipeline on the bundled corpus, and the chapter script

@pytest.fixture(scope="module")
def bundled_run(lid, scorer):
    inputs = [RAW / "web", RAW / "wiki", RAW / "crawl.jsonl", RAW / "dialogue.jsonl", RAW / "instructions.jsonl"]
    docs = list(corpus.read_documents(inputs, problems=[]))
    ids = [d.id for d in docs]
    result = pipeline.run_pipeline(docs, pipeline.Settings(), lid, scorer, progress=False)
    return ids, result


def test_pipeline_on_bundled_corpus_meets_its_ground_truth(bundled_run):
    ids, result = bundled_run
    out = [d.id for d in result.kept] + [r.id for r in result.removed]
    assert sorted(out) == sorted(ids)   # every document comes out exactly once
    report = pipeline.score_stages(result, labels())
    # The measured values are in CORPUS_RESULTS.md; these floors leave room for a few documents per stage.
    # langid's precision is lower by design: keyboard junk that looks German is dropped there, not by the rules.
    floors = {"extract": 0.95, "langid": 0.9, "rules": 0.95, "quality": 0.9, "exact_dup": 0.95, "near_dup": 0.9}
    for stage, floor in floors.items():
        row = report["per_stage"][stage]
        assert row["precision"] >= floor and row["recall"] >= floor, (stage, row)
    kept = {d.id for d in result.kept}
    for removal in result.removed:
        if removal.dup_of:
            assert removal.dup_of in kept   # a duplicate points at the copy that was kept


def test_funnel_counts_chain_from_stage_to_stage(bundled_run):
    _, result = bundled_run
    for before, after in zip(result.funnel, result.funnel[1:]):
        assert before.docs_out == after.docs_in and before.tokens_out == after.tokens_in
    for count in result.funnel:
        assert count.docs_in - count.docs_out == sum(count.reasons.values())


def run_script(*args, timeout=120):
    return subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("args, option", [(["--dedup-threshold", "1.5"], "--dedup-threshold"),
                                          (["--on-error", "maybe"], "--on-error"),
                                          (["--num-perm", "0"], "--num-perm"), (["--rule", "min_words"], "--rule"),
                                          (["--rule", "min_wrds=3"], "--rule"), (["--lang", "en,xx"], "--lang"),
                                          (["--bogus"], "--bogus")])
def test_bad_options_end_with_one_line_naming_the_option_and_status_2(args, option, capsys):
    # In-process (argument checks come before any work), so the test does not pay for a Python start each time.
    spec = importlib.util.spec_from_file_location("ch10_corpus", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    with pytest.raises(SystemExit) as stop:
        script.parse_args(args)
    stderr = capsys.readouterr().err
    assert stop.value.code == 2 and option in stderr and len(stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_script_on_own_data_writes_outputs_and_refuses_bad_input_on_request(tmp_path):
    data = tmp_path / "mine"
    write(data / "a_page.html", f"<html><body><nav>Menu</nav><p>{GOOD_EN}</p></body></html>")
    write(data / "b_copy.txt", GOOD_EN.upper())
    write(data / "short.txt", "Too short.")
    bad = write(tmp_path / "bad.jsonl", '{"text": "fine text"}\nnot json\n')
    out = tmp_path / "out"
    result = run_script("--input", str(data), str(bad), "--out", str(out), "--no-quality")
    assert result.returncode == 0, result.stderr
    assert f"{bad}:2" in result.stdout
    kept = [json.loads(line) for line in (out / "kept.jsonl").open()]
    removed = {json.loads(line)["id"]: json.loads(line) for line in (out / "removed.jsonl").open()}
    assert [k["id"] for k in kept] == ["mine/a_page.html"] and kept[0]["source"] == "mine"
    copy = removed["mine/b_copy.txt"]
    assert copy["stage"] == "exact_dup" and copy["dup_of"] == "mine/a_page.html"
    assert removed["mine/short.txt"]["stage"] == "rules" and removed["bad.jsonl:1"]["stage"] == "rules"
    report = json.loads((out / "report.json").read_text())
    assert report["input_problems"] == [f"{bad}:2: not valid JSON (Expecting value: line 1 column 1 (char 0)); "
                                        f"skipped"]
    assert (out / "funnel.png").read_bytes()[:4] == b"\x89PNG"
    refused = run_script("--input", str(bad), "--out", str(out), "--on-error", "fail")
    assert refused.returncode != 0 and f"{bad}:2" in refused.stderr


def test_bundled_corpus_is_exactly_what_its_generator_makes():
    result = subprocess.run([sys.executable, str(CORPUS / "make_corpus.py"), "--check"], capture_output=True,
                            text=True)
    assert result.returncode == 0, result.stdout + result.stderr
