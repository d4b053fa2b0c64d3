"""Leakage: texts that repeat within a split or appear in more than one split.

A test text that is also in the training data measures memory, not generalisation. Texts are
exact duplicates when they match after normalising case, whitespace and punctuation, and near
duplicates when the sets of their character 5-grams have a Jaccard similarity of at least
NEAR_SIMILARITY (a spam campaign sent again with another phone number, a typo fixed, a word
added). The run prints `LeakageReport.plan_line()` in its plan and keeps `to_dict()` in
all_results.json; `leakage_markdown` writes the report.md section from that dict. `--dedupe`
(`first_copies`) drops both kinds before splitting, so that no kept text repeats another.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass

import numpy as np
from scipy import sparse
from sklearn.feature_extraction.text import CountVectorizer

from hf_finetune.core.errors import UserError
from hf_finetune.core.report.markdown import markdown_table

NGRAM = 5  # characters: robust to typos and to the short texts of SMS or instructions
NEAR_SIMILARITY = 0.7  # Jaccard similarity of the n-gram sets; below it, template siblings dominate
EXAMPLES = 3  # of each kind in all_results.json; report.md shows those across splits
EXAMPLE_CHARACTERS = 160

_PUNCTUATION = re.compile(r"[^\w\s]")


def normalise(text: str) -> str:
    """Case folded, punctuation as spaces, whitespace collapsed: 'Ok lar...' and 'ok  LAR' are the same."""
    return " ".join(_PUNCTUATION.sub(" ", text.casefold()).split())


def near_duplicates(texts: list[str], threshold: float = NEAR_SIMILARITY) -> sparse.csr_matrix:
    """The Jaccard similarities of at least `threshold` between the texts' character n-gram sets,
    as a symmetric sparse matrix (an empty diagonal).

    Only texts that share one of their rarest n-grams are compared (prefix filtering: Bayardo et
    al., "Scaling up all pairs similarity search", 2007): with each text's n-grams ordered from
    rarest to most common, two sets with similarity >= t share one of the first |A| - ceil(t|A|) + 1
    of each. Comparing every pair instead is quadratic, and common n-grams (' the ') join nearly
    every pair of long texts."""
    count = len(texts)
    empty = sparse.csr_matrix((count, count))
    try:
        grams = CountVectorizer(analyzer="char", ngram_range=(NGRAM, NGRAM), lowercase=False, binary=True,
                                dtype=np.int32).fit_transform(texts).tocsr()  # fmt: skip
    except ValueError:  # no text has NGRAM characters
        return empty
    sizes = np.diff(grams.indptr)
    frequency = np.bincount(grams.indices, minlength=grams.shape[1])
    rarity = np.empty_like(frequency)
    rarity[np.argsort(frequency, kind="stable")] = np.arange(len(frequency))
    rows = np.repeat(np.arange(count), sizes)
    # Each row's entries keep their place in the matrix, reordered rarest first: their rank is the position.
    rarest_first = np.lexsort((rarity[grams.indices], rows))
    position = np.arange(len(rows)) - grams.indptr[rows]
    prefix_length = sizes - np.ceil(threshold * sizes).astype(np.int64) + 1
    kept = rarest_first[position < prefix_length[rows]]
    prefixes = sparse.csr_matrix((np.ones(len(kept), np.int32), (rows[kept], grams.indices[kept])), shape=grams.shape)
    candidates = sparse.triu(prefixes @ prefixes.T, k=1).tocoo()
    first, second = candidates.row, candidates.col
    # Sets of sizes a <= b have a similarity of at most a / b.
    possible = np.minimum(sizes[first], sizes[second]) >= threshold * np.maximum(sizes[first], sizes[second])
    first, second = first[possible], second[possible]
    shared = np.empty(len(first))
    batch = max(1, 5_000_000 // max(1, int(sizes.mean())))  # bounded memory for long texts
    for start in range(0, len(first), batch):
        a, b = first[start : start + batch], second[start : start + batch]
        shared[start : start + batch] = np.asarray(grams[a].multiply(grams[b]).sum(axis=1)).ravel()
    similarity = shared / np.maximum(sizes[first] + sizes[second] - shared, 1)
    keep = similarity >= threshold
    upper = sparse.csr_matrix((similarity[keep], (first[keep], second[keep])), shape=(count, count))
    return (upper + upper.T).tocsr()


@dataclass
class LeakageReport:
    """Counts and examples of duplicate texts within and across splits (see `check_leakage`)."""

    summary: dict

    def plan_line(self) -> str:
        return leakage_plan_line(self.summary)

    def to_dict(self) -> dict:
        return self.summary


def check_leakage(split_texts: dict[str, list[str]], labels: dict[str, list[str]] | None = None) -> LeakageReport:
    """Exact and near duplicate texts within each split and across splits.

    `split_texts` maps split names to texts in their order: train, validation, test (or train and
    held-out); each split is compared with the splits before it. `labels` (classifiers) maps the
    same names to each text's class name, so that the texts found in another split are counted
    per class."""
    distinct: dict[str, int] = {}  # normalised text -> id, in order of first appearance
    originals: list[str] = []  # id -> the text as first written
    ids = {}
    for name, texts in split_texts.items():
        split_ids = []
        for text in texts:
            key = normalise(text)
            if key not in distinct:
                distinct[key] = len(distinct)
                originals.append(text)
            split_ids.append(distinct[key])
        ids[name] = np.asarray(split_ids, dtype=np.int64)
    similar = near_duplicates(list(distinct))
    names = list(split_texts)
    summary = {
        "compared": f"exact: same text after normalising case, whitespace and punctuation; near: Jaccard "
                    f"similarity of character {NGRAM}-gram sets of at least {NEAR_SIMILARITY}",
        "sizes": {name: len(texts) for name, texts in split_texts.items()},
        "within": {name: _within(ids[name], similar, originals) for name in names},
        "across": [
            _across(later, earlier, ids, similar, originals, split_texts[later], (labels or {}).get(later))
            for position, later in enumerate(names)
            for earlier in names[:position]
        ],
    }
    return LeakageReport(summary)


def _within(ids: np.ndarray, similar: sparse.csr_matrix, originals: list[str]) -> dict:
    """Texts that repeat an earlier text of the same split, exactly or nearly."""
    repeats = Counter(ids.tolist())
    members = np.unique(ids)  # ids count in order of first appearance over all splits
    earlier_partner = sparse.tril(similar[members][:, members], k=-1).tocsr()
    near_rows = np.flatnonzero(np.diff(earlier_partner.indptr))
    near_examples = []
    for row in near_rows[:EXAMPLES]:
        columns = earlier_partner.indices[earlier_partner.indptr[row] : earlier_partner.indptr[row + 1]]
        values = earlier_partner.data[earlier_partner.indptr[row] : earlier_partner.indptr[row + 1]]
        best = int(np.argmax(values))
        near_examples.append(_pair(originals[members[row]], originals[members[columns[best]]], values[best]))
    return {
        "exact": len(ids) - len(repeats),
        "near": len(near_rows),
        "exact_examples": [
            {"text": _shown(originals[key]), "copies": copies}
            for key, copies in repeats.most_common(EXAMPLES)
            if copies > 1
        ],
        "near_examples": near_examples,
    }


def _across(later: str, earlier: str, ids: dict, similar: sparse.csr_matrix, originals: list[str], texts: list[str],
            labels: list[str] | None) -> dict:  # fmt: skip
    """The texts of split `later` (`texts`, `labels`) that are (exactly or nearly) texts of split `earlier`."""
    in_earlier = np.zeros(len(originals), dtype=bool)
    in_earlier[ids[earlier]] = True
    near_earlier = np.asarray(similar @ in_earlier.astype(np.float64)).ravel() > 0
    exact = in_earlier[ids[later]]
    near = near_earlier[ids[later]] & ~exact
    result = {"split": later, "in": earlier, "texts": len(exact), "exact": int(exact.sum()), "near": int(near.sum())}
    if labels is not None:
        result["exact_by_class"] = dict(Counter(labels[index] for index in np.flatnonzero(exact)).most_common())
        result["near_by_class"] = dict(Counter(labels[index] for index in np.flatnonzero(near)).most_common())
    result["exact_examples"] = [{"text": _shown(texts[index])} for index in np.flatnonzero(exact)[:EXAMPLES]]
    result["near_examples"] = []
    for index in np.flatnonzero(near)[:EXAMPLES]:
        row = similar[ids[later][index]]
        candidates = in_earlier[row.indices]
        columns, values = row.indices[candidates], row.data[candidates]
        best = int(np.argmax(values))
        result["near_examples"].append(_pair(texts[index], originals[columns[best]], values[best]))
    return result


def _pair(text: str, match: str, similarity: float) -> dict:
    return {"text": _shown(text), "match": _shown(match), "similarity": round(float(similarity), 3)}


def _shown(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= EXAMPLE_CHARACTERS else text[: EXAMPLE_CHARACTERS - 1] + "…"


def _by_class(counts: dict[str, int] | None) -> str:
    return f" ({', '.join(f'{count} {name}' for name, count in counts.items())})" if counts else ""


def leakage_plan_line(summary: dict) -> str:
    """One line for the plan: what is found in an earlier split, then what repeats within a split."""
    parts = [
        f"{item['exact']} of {item['texts']} {item['split']} texts also in {item['in']}"
        f"{_by_class(item.get('exact_by_class'))} + {item['near']} near"
        for item in summary["across"]
        if item["exact"] or item["near"]
    ]
    within = [
        f"{name} {counts['exact']} + {counts['near']} near"
        for name, counts in summary["within"].items()
        if counts["exact"] or counts["near"]
    ]
    if within:
        parts.append("repeats within " + ", ".join(within))
    return "; ".join(parts) or f"no text repeats within or across {', '.join(summary['sizes'])} (exact or near)"


def leakage_markdown(summary: dict) -> str:
    """The report.md section: what is compared, a table across and within splits, and examples."""
    across = markdown_table(
        ["split", "texts", "also in", "exact duplicates", "near duplicates"],
        [
            [item["split"], item["texts"], item["in"], f"{item['exact']}{_by_class(item.get('exact_by_class'))}",
             f"{item['near']}{_by_class(item.get('near_by_class'))}"]
            for item in summary["across"]
        ],
    )  # fmt: skip
    within = markdown_table(
        ["split", "texts", "repeats (exact)", "repeats (near)"],
        [[name, summary["sizes"][name], counts["exact"], counts["near"]] for name, counts in summary["within"].items()],
    )
    examples = []
    for item in summary["across"]:
        where = f"{item['split']} text also in {item['in']}"
        examples += [f"- {where}: \"{example['text']}\"" for example in item["exact_examples"]]
        examples += [
            f"- {item['split']} text near a {item['in']} text (similarity {example['similarity']}): "
            f"\"{example['text']}\" ~ \"{example['match']}\""
            for example in item["near_examples"]
        ]
    sections = [
        "## Leakage: duplicate texts",
        f"Compared before training; {summary['compared']}. A text of a later split that is also in the training "
        "split measures memory, not generalisation. `--dedupe` drops both kinds before splitting.",
        across if summary["across"] else "",
        within,
        ("Examples:\n\n" + "\n".join(examples)) if examples else "",
    ]
    return "\n\n".join(section for section in sections if section)


def first_copies(split_texts: dict[str, list[str]], what: str = "texts") -> tuple[dict[str, list[int]], str]:
    """`--dedupe`: the positions to keep in each split so that no two kept texts are exact or near
    duplicates, and the data note saying how many were dropped. A text is kept where it comes first,
    the splits in the order given (test, validation, train: a test text stays, its copy leaves train)."""
    distinct: dict[str, int] = {}
    ids = {name: [distinct.setdefault(normalise(text), len(distinct)) for text in texts]
           for name, texts in split_texts.items()}  # fmt: skip
    similar = near_duplicates(list(distinct))
    seen, is_kept = np.zeros(len(distinct), dtype=bool), np.zeros(len(distinct), dtype=bool)
    kept: dict[str, list[int]] = {name: [] for name in ids}
    exact = near = 0
    for name, split_ids in ids.items():
        for position, key in enumerate(split_ids):
            if seen[key]:
                exact += 1
            elif is_kept[similar.indices[similar.indptr[key] : similar.indptr[key + 1]]].any():
                near += 1
            else:
                is_kept[key] = True
                kept[name].append(position)
            seen[key] = True
    names = list(split_texts)
    for position, name in enumerate(names):
        if split_texts[name] and not kept[name]:
            raise UserError(
                f"--dedupe: all {len(split_texts[name])} {what} of the {name} split repeat {what} of the "
                f"{' or '.join(names[:position])} split, so none is left; drop --dedupe or give the {name} split "
                f"{what} of its own."
            )
    if not exact + near:
        return kept, f"--dedupe dropped no duplicate {what}"
    sizes = [(name, len(texts), len(kept[name])) for name, texts in split_texts.items() if len(kept[name]) < len(texts)]
    changes = ", ".join(f"{name} {before} -> {after}" if len(split_texts) > 1 else f"{before} -> {after}"
                        for name, before, after in sizes)  # fmt: skip
    note = f"--dedupe dropped {exact + near} duplicate {what} ({exact} exact, {near} near): {changes}"
    return kept, note
