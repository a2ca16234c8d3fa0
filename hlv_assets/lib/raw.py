"""Readers of the raw data files into tidy pandas frames; every bad input names its file, line and field."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from hlv_assets.lib.nli import LETTERS, LabelError, label_index
from hlv_assets.lib.validation import DataFormatError, check_label_vector

# Data-pack paths (relative to the pack root) of every file the raw layer reads.
CHAOSNLI_MNLI = "chaosnli/chaosNLI_v1.0/chaosNLI_mnli_m.jsonl"
CHAOSNLI_SNLI = "chaosnli/chaosNLI_v1.0/chaosNLI_snli.jsonl"
VARIERR = "varierr/varierr.json"
HLV_ITEMS = "mjd_estimator/MJD-generator/NLI_explanations.json"
CHAOS_DEV = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/dev.json"
CHAOS_TEST = "mjd_estimator/MJD-fine-tuning/data/chaos_dev_test/test.json"
ANLI_ROUNDS = ("R1", "R2", "R3")


def anli_path(round_: str) -> str:
    return f"anli/anli_v1.0/{round_}/test.jsonl"


def read_jsonl(path: Path) -> Iterator[tuple[int, dict]]:
    """Yield (1-based line number, object) for each non-blank line; a malformed line raises DataFormatError."""
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataFormatError(
                    path, lineno, "<json>", f"malformed JSON ({exc.msg} at column {exc.colno})"
                ) from None
            if not isinstance(obj, dict):
                raise DataFormatError(path, lineno, "<json>", f"expected an object, got {type(obj).__name__}")
            yield lineno, obj


def _field(obj: dict, name: str, path: Path, lineno: int, types=(str,)):
    if name not in obj:
        raise DataFormatError(path, lineno, name, "missing")
    value = obj[name]
    if not isinstance(value, types):
        raise DataFormatError(
            path, lineno, name, f"expected {'/'.join(t.__name__ for t in types)}, got {value!r}"
        )
    return value


def _letter(value, path: Path, lineno: int, field: str) -> str:
    try:
        return LETTERS[label_index(value)]
    except LabelError as exc:
        raise DataFormatError(path, lineno, field, str(exc)) from None


def _counts_from_labels(labels: list[str]) -> list[int]:
    counts = [0, 0, 0]
    for lab in labels:
        counts[LETTERS.index(lab)] += 1
    return counts


def _no_duplicates(uids: list[tuple[int, str]], path: Path, field: str = "uid") -> None:
    seen: dict[str, int] = {}
    for lineno, uid in uids:
        if uid in seen:
            raise DataFormatError(path, lineno, field, f"duplicate uid {uid!r} (first on line {seen[uid]})")
        seen[uid] = lineno


def text_key(premise: str, hypothesis: str) -> tuple[str, str]:
    """Join key of an item: premise and hypothesis with all whitespace removed."""
    return "".join(premise.split()), "".join(hypothesis.split())


def load_chaosnli(path: Path) -> pd.DataFrame:
    """ChaosNLI (MNLI or SNLI part): uid, premise, hypothesis, hjd, hjd_counts, original labels and gold, and the
    release's `majority_label` of the 100 votes (ties as the release broke them: not recoverable from the counts)."""
    rows, uids = [], []
    for lineno, obj in read_jsonl(path):
        uid = _field(obj, "uid", path, lineno)
        example = _field(obj, "example", path, lineno, (dict,))
        premise = _field(example, "premise", path, lineno)
        hypothesis = _field(example, "hypothesis", path, lineno)
        hjd = check_label_vector(obj.get("label_dist"), path, lineno, "label_dist", kind="distribution")
        counts = check_label_vector(obj.get("label_count"), path, lineno, "label_count", kind="counts")
        if sum(counts) <= 0:
            raise DataFormatError(path, lineno, "label_count", "no votes")
        old = _field(obj, "old_labels", path, lineno, (list,))
        old_letters = [_letter(v, path, lineno, "old_labels") for v in old]
        gold = _letter(_field(obj, "old_label", path, lineno), path, lineno, "old_label")
        majority = _letter(_field(obj, "majority_label", path, lineno), path, lineno, "majority_label")
        uids.append((lineno, uid))
        rows.append(
            {
                "uid": uid,
                "premise": premise,
                "hypothesis": hypothesis,
                "hjd": hjd,
                "hjd_counts": [int(c) for c in counts],
                "original_labels": old_letters,
                "original_counts": _counts_from_labels(old_letters),
                "original_gold": gold,
                "majority_label": majority,
            }
        )
    _no_duplicates(uids, path)
    return pd.DataFrame(rows)


def load_varierr(path: Path) -> pd.DataFrame:
    """VariErr NLI: uid, premise, hypothesis, round-1 label counts, explanations with validity judgments."""
    rows, uids = [], []
    for lineno, obj in read_jsonl(path):
        uid = _field(obj, "id", path, lineno)
        premise = _field(obj, "context", path, lineno)
        hypothesis = _field(obj, "statement", path, lineno)
        explanations = []
        for word in ("entailment", "neutral", "contradiction"):
            for j, ex in enumerate(_field(obj, word, path, lineno, (list,))):
                if not isinstance(ex, dict) or not isinstance(ex.get("reason"), str):
                    raise DataFormatError(path, lineno, f"{word}[{j}].reason", "missing explanation text")
                judgments = ex.get("judgments") or []
                valid = [bool(j_["makes_sense"]) for j_ in judgments if isinstance(j_, dict)]
                explanations.append(
                    {
                        "label": LETTERS[label_index(word)],
                        "annotator": ex.get("annotator"),
                        "text": ex["reason"],
                        "validity_yes": sum(valid),
                        "validity_n": len(valid),
                    }
                )
        counts_raw = _field(obj, "label_count_round_1", path, lineno, (dict,))
        counts = []
        for word in ("entailment", "neutral", "contradiction"):
            v = counts_raw.get(word)
            v = 0 if v is None else v  # the file writes an unused label as null
            if not isinstance(v, (int, float)) or v < 0:
                raise DataFormatError(path, lineno, f"label_count_round_1.{word}", f"bad count {v!r}")
            counts.append(int(v))
        uids.append((lineno, uid))
        rows.append(
            {
                "uid": uid,
                "premise": premise,
                "hypothesis": hypothesis,
                "round1_counts": counts,
                "explanations": explanations,
            }
        )
    _no_duplicates(uids, path, "id")
    return pd.DataFrame(rows)


def load_hlv_items(path: Path, chaosnli: pd.DataFrame, varierr: pd.DataFrame) -> pd.DataFrame:
    """The 341 items of SPEC §1 with the ChaosNLI uid recovered by joining on whitespace-free text."""
    by_text = {text_key(p, h): u for u, p, h in zip(chaosnli.uid, chaosnli.premise, chaosnli.hypothesis)}
    varierr_uids = set(varierr.uid)
    rows, unjoined = [], []
    for lineno, obj in read_jsonl(path):
        premise = _field(obj, "premise", path, lineno)
        hypothesis = _field(obj, "hypothesis", path, lineno)
        hjd = check_label_vector(obj.get("chaos probs"), path, lineno, "chaos probs", kind="distribution")
        varierr_counts = check_label_vector(
            obj.get("varierr labels"), path, lineno, "varierr labels", kind="counts"
        )
        mnli = _field(obj, "mnli labels", path, lineno, (list,))
        if len(mnli) != 2:
            raise DataFormatError(path, lineno, "mnli labels", "expected [gold letter, [cE, cN, cC]]")
        gold = _letter(mnli[0], path, lineno, "mnli labels[0]")
        mnli_counts = check_label_vector(mnli[1], path, lineno, "mnli labels[1]", kind="counts")
        comments = _field(obj, "comments", path, lineno, (list,))
        human = []
        for j, pair in enumerate(comments):
            if not isinstance(pair, list) or len(pair) != 2 or not isinstance(pair[0], str):
                raise DataFormatError(path, lineno, f"comments[{j}]", "expected [explanation, letter]")
            human.append([pair[0], _letter(pair[1], path, lineno, f"comments[{j}][1]")])
        uid = by_text.get(text_key(premise, hypothesis))
        if uid is None or uid not in varierr_uids:
            unjoined.append(f"line {lineno} ({premise[:40]!r} / {hypothesis[:40]!r})")
            continue
        rows.append(
            {
                "item_index": lineno - 1,
                "uid": uid,
                "premise": premise,
                "hypothesis": hypothesis,
                "hjd": hjd,
                "varierr_counts": [int(c) for c in varierr_counts],
                "mnli_counts": [int(c) for c in mnli_counts],
                "mnli_gold": gold,
                "human_explanations": human,
            }
        )
    if unjoined:
        raise DataFormatError(
            path,
            0,
            "premise+hypothesis",
            f"{len(unjoined)} items do not join ChaosNLI-MNLI and VariErr: " + "; ".join(unjoined),
        )
    _no_duplicates([(r["item_index"] + 1, r["uid"]) for r in rows], path)
    return pd.DataFrame(rows)


def load_chaos_split(path: Path, chaosnli: pd.DataFrame, split: str) -> pd.DataFrame:
    """ChaosNLI dev or test of the fine-tuning recipe, with the uid recovered by the same join and ChaosNLI's
    `majority_label` (the ChaosNLI scorer's "New Acc." reference)."""
    by_text = {text_key(p, h): u for u, p, h in zip(chaosnli.uid, chaosnli.premise, chaosnli.hypothesis)}
    majority = dict(zip(chaosnli.uid, chaosnli.majority_label))
    rows, missing = [], []
    for lineno, obj in read_jsonl(path):
        premise = _field(obj, "premise", path, lineno)
        hypothesis = _field(obj, "hypothesis", path, lineno)
        hjd = check_label_vector(obj.get("label"), path, lineno, "label", kind="distribution")
        uid = by_text.get(text_key(premise, hypothesis))
        if uid is None:
            missing.append(str(lineno))
        rows.append({"uid": uid, "premise": premise, "hypothesis": hypothesis, "hjd": hjd, "split": split,
                     "majority_label": majority.get(uid)})
    if missing:
        raise DataFormatError(
            path, 0, "premise+hypothesis", f"lines {', '.join(missing)} are not in ChaosNLI"
        )
    frame = pd.DataFrame(rows)
    _no_duplicates([(i + 1, u) for i, u in enumerate(frame.uid)], path)
    return frame


def load_anli(path: Path, round_: str) -> pd.DataFrame:
    """One ANLI v1.0 test round: uid, premise (context), hypothesis, gold label letter, round."""
    rows, uids = [], []
    for lineno, obj in read_jsonl(path):
        uid = _field(obj, "uid", path, lineno)
        rows.append(
            {
                "uid": uid,
                "premise": _field(obj, "context", path, lineno),
                "hypothesis": _field(obj, "hypothesis", path, lineno),
                "label": _letter(_field(obj, "label", path, lineno), path, lineno, "label"),
                "round": round_,
            }
        )
        uids.append((lineno, uid))
    _no_duplicates(uids, path)
    return pd.DataFrame(rows)
