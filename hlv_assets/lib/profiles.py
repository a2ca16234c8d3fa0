"""Run profiles (`HLV_PROFILE`): how much of the work a run covers. Recorded on every stored row."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace

from hlv_assets.lib import settings


@dataclass(frozen=True)
class Profile:
    name: str
    #: items the live generators explain (None = all 341)
    generation_items: int | None
    max_new_tokens: int
    #: items the judges judge (None = all 341), and explanation orders per item (None = all arrangements)
    mjd_items: int | None
    explanation_orders: int | None
    #: explanation sources the main job judges with the embedded judge
    main_sources: tuple[str, ...]
    finetune_epochs: int
    #: one fine-tune per seed; the rows give mean ± sd over them and keep each seed's numbers
    finetune_seeds: tuple[int, ...]
    finetune_max_steps: int | None
    eval_every: int
    #: evaluation items per ChaosNLI split / ANLI round (None = all)
    eval_items: int | None
    #: use random tiny models instead of the embedded ones (tests)
    random_models: bool
    #: which weights a fine-tune reports and saves: `final` (the authors' effective procedure, SPEC §5) or
    #: `best-dev-<metric>`; and its arithmetic: `fp32` (as the authors) or `bf16` (autocast on a GPU)
    finetune_selection: str = "final"
    finetune_precision: str = "fp32"
    #: transformers judges score through the prefix tree (every distinct prompt prefix once; equal to one
    #: forward per prompt within 1e-5) unless their registration sets `prefix_tree`; off where the grid is
    #: small (tiny, demo: one-level prefix reuse, whose numbers the golden file pins)
    prefix_tree: bool = False

    def as_dict(self) -> dict:
        return asdict(self)


PROFILES = {
    "tiny": Profile(
        "tiny",
        generation_items=4,
        max_new_tokens=16,
        mjd_items=4,
        explanation_orders=1,
        main_sources=("none", "human", "llama3.varierr-lg-first"),
        finetune_epochs=1,
        finetune_seeds=(42,),
        finetune_max_steps=4,
        eval_every=2,
        eval_items=24,
        random_models=True,
        finetune_selection="final",
        finetune_precision="fp32",
    ),
    "demo": Profile(
        "demo",
        generation_items=20,
        max_new_tokens=128,
        mjd_items=20,
        explanation_orders=2,
        main_sources=("none", "human", "llama3.varierr-lg-first"),
        finetune_epochs=2,
        finetune_seeds=(42,),
        # CPU budget: 40 steps (160 samples) and 150 items per evaluation split keep one fine-tune near 1.5 min
        finetune_max_steps=40,
        eval_every=20,
        eval_items=150,
        random_models=False,
        finetune_selection="final",
        finetune_precision="fp32",
    ),
    "paper": Profile(
        "paper",
        generation_items=None,
        max_new_tokens=512,
        mjd_items=None,
        explanation_orders=None,
        main_sources=("none", "human"),
        finetune_epochs=5,
        finetune_seeds=(42,),  # the authors ran seed 42 once; more: HLV_FINETUNE_SEEDS=42,43,44
        finetune_max_steps=None,
        eval_every=20,
        eval_items=None,
        random_models=False,
        finetune_selection="final",
        finetune_precision="fp32",
        prefix_tree=True,
    ),
}


assert tuple(PROFILES) == settings.PROFILE_NAMES, "lib/settings.py names the profiles defined here"
assert all(p.finetune_selection in settings.FINETUNE_SELECTIONS and p.finetune_precision in settings.FINETUNE_PRECISIONS
           for p in PROFILES.values())


def current_profile_name() -> str:
    """`HLV_PROFILE`, validated (SettingsError names the accepted profiles)."""
    return settings.profile_name()


def get_profile(name: str | None = None, environ: Mapping[str, str] | None = None) -> Profile:
    """The named (default: the current) profile with the fine-tune overrides of the environment applied
    (HLV_FINETUNE_SEEDS, HLV_FINETUNE_SELECTION, HLV_FINETUNE_PRECISION), so every stored row records them."""
    profile = PROFILES[settings.check_profile(name, "profile") if name else current_profile_name()]
    overrides = {"finetune_seeds": settings.finetune_seeds(environ),
                 "finetune_selection": settings.finetune_selection(environ),
                 "finetune_precision": settings.finetune_precision(environ)}
    return replace(profile, **{k: v for k, v in overrides.items() if v is not None})
