"""Read the published LLM generations of Chen et al. 2025 (SPEC §1-§2) from the data pack.

Two kinds of files, both under `mjd_estimator/Model-Explanation/<M>-explanations/`:

* raw generations `<M>-raw-output/<i>/<E|N|C>` (i = 0..340, the line index in
  `MJD-generator/NLI_explanations.json`): one file per (item, label the model was asked to explain).
  Llama3 files hold the whole chat-templated prompt and answer, Mixtral files
  `<s> [INST] prompt [/INST] answer</s>` (the `</s>` is missing when the generation was cut at the token
  limit), GPT4o files only the answer. :func:`strip_template` gives the answer text.
* selected explanation sets `<M>-model-explanation-main/<set file>.json` (JSON Lines, one row per item):
  premise, hypothesis and a list of [explanation, letter] pairs under a key that differs per file.

Modules: `files` (paths, templates, readers), `matching` (reproducing the selection files), `__main__` (the
match table on the command line).
"""

from hlv_assets.lib.released.files import (
    EXPLANATION_KEYS,
    N_ITEMS,
    RELEASED_MODELS,
    SET_FILES,
    generation_complete,
    items_path,
    model_dir,
    raw_output_path,
    read_items,
    read_released_generations,
    read_released_selection,
    selection_path,
    strip_template,
)
from hlv_assets.lib.released.matching import (
    MISMATCH_CATEGORIES,
    classify_mismatch,
    compare_with_released,
    format_match_table,
    match_table,
    parse_released_generations,
)
from hlv_assets.lib.selection import SET_NAMES
from hlv_assets.lib.validation import DataFormatError

__all__ = [
    "DataFormatError",
    "EXPLANATION_KEYS",
    "MISMATCH_CATEGORIES",
    "N_ITEMS",
    "RELEASED_MODELS",
    "SET_FILES",
    "SET_NAMES",
    "classify_mismatch",
    "compare_with_released",
    "format_match_table",
    "generation_complete",
    "items_path",
    "match_table",
    "model_dir",
    "parse_released_generations",
    "raw_output_path",
    "read_items",
    "read_released_generations",
    "read_released_selection",
    "selection_path",
    "strip_template",
]
