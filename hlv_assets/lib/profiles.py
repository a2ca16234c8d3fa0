"""Run profiles (`HLV_PROFILE`): how much of the work a run covers. Recorded on every stored row."""

from __future__ import annotations

from dataclasses import asdict, dataclass

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
    finetune_seeds: tuple[int, ...]
    finetune_max_steps: int | None
    eval_every: int
    #: evaluation items per ChaosNLI split / ANLI round (None = all)
    eval_items: int | None
    #: use random tiny models instead of the embedded ones (tests)
    random_models: bool

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
    ),
    "paper": Profile(
        "paper",
        generation_items=None,
        max_new_tokens=512,
        mjd_items=None,
        explanation_orders=None,
        main_sources=("none", "human"),
        finetune_epochs=5,
        finetune_seeds=(42, 43, 44),
        finetune_max_steps=None,
        eval_every=20,
        eval_items=None,
        random_models=False,
    ),
}


assert tuple(PROFILES) == settings.PROFILE_NAMES, "lib/settings.py names the profiles defined here"


def current_profile_name() -> str:
    """`HLV_PROFILE`, validated (SettingsError names the accepted profiles)."""
    return settings.profile_name()


def get_profile(name: str | None = None) -> Profile:
    return PROFILES[settings.check_profile(name, "profile") if name else current_profile_name()]
