"""Replay of the papers' published generations (Llama3, GPT4o, Mixtral) behind the LLMBackend interface.

`generate` maps each prompt back to (item, label) through the generation prompt of SPEC §2 built from the 341
items of `mjd_estimator/MJD-generator/NLI_explanations.json` (line index = item index) and returns the
published answer (the raw output with its chat template stripped, see `hlv_assets.lib.released`). Replays
cost nothing and count no tokens; label scores were not published, so `label_logits` raises CapabilityError.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from hlv_assets.lib.paths import REPO_ROOT
from hlv_assets.lib.prompts import generation_prompt
from hlv_assets.lib.released import RELEASED_MODELS, read_items, read_released_generations
from hlv_assets.llm.base import (
    GENERATE,
    CapabilityError,
    Generation,
    GenerationParams,
    LabelScores,
    LLMIdentity,
)

#: MJD-Estimator commit the generations were published at (the identity's revision).
MJD_ESTIMATOR_COMMIT = "a939ed0892c7007d946ba286e691dc797e3a8fb0"
MJD_ESTIMATOR_REPOSITORY = "mainlp/MJD-Estimator"


class UnknownPromptError(KeyError):
    """A prompt that is not one of the 341 x 3 generation prompts the published generations answer."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


def default_data_dir() -> Path:
    """The local data pack: `HLV_DATA_DIR`, else `../shared/data` beside the repository."""
    env = os.environ.get("HLV_DATA_DIR")
    return Path(env) if env else REPO_ROOT.parent / "shared" / "data"


class ReleasedBackend:
    """Published generations of one model, looked up by prompt. `slug` is one of `RELEASED_MODELS`."""

    capabilities = frozenset({GENERATE})

    def __init__(self, slug: str, data_dir: str | Path | None = None) -> None:
        if slug not in RELEASED_MODELS:
            raise ValueError(
                f"no published generations for {slug!r}: expected one of {sorted(RELEASED_MODELS)}"
            )
        self.slug = slug
        self.folder = RELEASED_MODELS[slug]
        self.data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
        self._answers: dict[str, str] | None = None
        self._where: dict[str, tuple[int, str]] = {}
        self._complete: dict[str, bool | None] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"ReleasedBackend(slug={self.slug!r}, data_dir={str(self.data_dir)!r})"

    def identity(self) -> LLMIdentity:
        return LLMIdentity(
            backend="released",
            model_id=self.folder,
            revision=MJD_ESTIMATOR_COMMIT,
            extra={"source": MJD_ESTIMATOR_REPOSITORY},
        )

    def _load(self) -> dict[str, str]:
        with self._lock:
            if self._answers is None:
                items = read_items(self.data_dir)
                answers: dict[str, str] = {}
                where: dict[str, tuple[int, str]] = {}
                for row in read_released_generations(self.data_dir, self.slug, n_items=len(items)):
                    item = items[row["item_index"]]
                    prompt = generation_prompt(item["premise"], item["hypothesis"], row["label"])
                    if prompt in answers:
                        raise ValueError(f"two items share the generation prompt of item {row['item_index']}")
                    answers[prompt] = row["answer"]
                    self._complete[prompt] = row["complete"]
                    where[prompt] = (row["item_index"], row["label"])
                self._answers, self._where = answers, where
            return self._answers

    def locate(self, prompt: str) -> tuple[int, str]:
        """(item index, label letter e/n/c) of a generation prompt."""
        self._load()
        try:
            return self._where[prompt]
        except KeyError:
            raise self._unknown(prompt) from None

    def _unknown(self, prompt: str) -> UnknownPromptError:
        return UnknownPromptError(
            f"{self.slug}: no published generation for this prompt (replays answer only the SPEC §2 generation "
            f"prompt of the 341 items, verbatim): {prompt[:120]!r}"
        )

    def generate(self, prompts: list[str], params: GenerationParams | None = None) -> list[Generation]:
        """The published answers; decoding parameters cannot change a replay and are ignored."""
        answers = self._load()
        out = []
        for prompt in prompts:
            if prompt not in answers:
                raise self._unknown(prompt)
            complete = self._complete.get(prompt)
            reason = None if complete is None else ("stop" if complete else "length")
            out.append(Generation(text=answers[prompt], finish_reason=reason))
        return out

    def label_logits(
        self, prompts: list[str], letters: tuple[str, ...] = ("A", "B", "C")
    ) -> list[LabelScores]:
        raise CapabilityError(
            f"{self.slug} is a replay of published generations: it has no label scores (capabilities: generate)"
        )
