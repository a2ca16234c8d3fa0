"""The paper's numbers: every table of Chen et al. 2025's poster (`shared/docs/poster.md`), transcribed.

Each poster table is a tuple of `PaperRow`s; a row names what it is (`kind`: a baseline, a judge's MJD with
an explanation source, a reference encoder) so the report can find the matching rows of ours. Values are
floats as printed (3 decimals); dev/test pairs are (dev, test). Bold marks of the poster are dropped.

`RECOMPUTED` holds what SPEC §7 recomputed from the released data with the definitions of SPEC §4: the
poster's VariErr TVD (0.296) and MNLI JSD/TVD (0.281 / 0.295) do not follow from the data.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "ANLI_COLUMNS",
    "ANLI_TABLE",
    "DATASET_TABLE",
    "DIST_METRICS",
    "DISCREPANCIES",
    "FT_METRICS",
    "MAIN_TABLE",
    "PREFERENCE_TABLE",
    "RECOMPUTED",
    "VARIABILITY_COLUMNS",
    "VARIABILITY_TABLE",
    "PaperRow",
]

#: Distribution-comparison columns (SPEC §4) in poster order; `dcor` is the poster's "Global" / D.Corr column.
DIST_METRICS: tuple[str, ...] = ("kl", "jsd", "tvd", "dcor")
#: Fine-tuning columns, each a (dev, test) pair: KL as published (F.kl_div mean), CE loss, weighted F1.
FT_METRICS: tuple[str, ...] = ("kl_published", "ce_loss", "weighted_f1")
#: ANLI columns: weighted F1 per round.
ANLI_COLUMNS: tuple[str, ...] = ("r1", "r2", "r3")
#: Variability columns (lib.variability.POSTER_METRICS plus the average).
VARIABILITY_COLUMNS: tuple[str, ...] = ("lex1", "lex2", "lex3", "syn1", "syn2", "syn3", "cos", "euc", "avg")


@dataclass(frozen=True)
class PaperRow:
    """One row of a poster table.

    kind: ``baseline`` (source = a baseline partition), ``mjd`` (judge = "Llama3" | "GPT-4o", explanations =
    ``none`` | ``human`` | a set kind ``lf`` / ``varierr-lg`` / ``mnli-lg`` of the judge's own explanations),
    ``reference`` (source = ``zero-shot`` | ``start-checkpoint``), ``preference`` (which/method of the
    selection) or ``variability`` (set = ``human`` or ``<which>-<method>``).
    """

    label: str
    kind: str
    source: str | None = None
    judge: str | None = None
    explanations: str | None = None
    values: dict = field(default_factory=dict)


def _dist(kl, jsd, tvd, dcor) -> dict:
    return {"kl": kl, "jsd": jsd, "tvd": tvd, "dcor": dcor}


def _ft(prefix: str, kl, ce, f1) -> dict:
    return {f"{prefix}_kl_published": kl, f"{prefix}_ce_loss": ce, f"{prefix}_weighted_f1": f1}


def _main(label, kind, dist, bert, roberta, **kw) -> PaperRow:
    return PaperRow(label, kind, values={**_dist(*dist), **_ft("bert", *bert), **_ft("roberta", *roberta)}, **kw)


# ---- "Can Model Explanations Help LLMs Approximate HJD as Humans Do?" ---------------------------------------
# Dist. comparison (KL, JSD, TVD), BERT and RoBERTa fine-tuning (dev / test) and Global D.Corr.
MAIN_TABLE: tuple[PaperRow, ...] = (
    _main("ChaosNLI HJD", "baseline", (0.000, 0.000, 0.000, 1.000),
          ((0.073, 0.077), (0.967, 0.974), (0.645, 0.609)), ((0.062, 0.060), (0.933, 0.922), (0.696, 0.653)),
          source="chaosnli"),
    _main("VariErr dist.", "baseline", (3.604, 0.282, 0.296, 0.688),
          ((0.177, 0.179), (1.279, 1.279), (0.552, 0.522)), ((0.166, 0.173), (1.246, 1.261), (0.616, 0.594)),
          source="varierr"),
    _main("MNLI dist.", "baseline", (1.242, 0.281, 0.295, 0.795),
          ((0.104, 0.100), (1.062, 1.042), (0.569, 0.555)), ((0.101, 0.093), (1.052, 1.020), (0.625, 0.607)),
          source="mnli"),
    _main("Llama3 MJD", "mjd", (0.259, 0.262, 0.284, 0.689),
          ((0.099, 0.101), (1.045, 1.044), (0.516, 0.487)), ((0.094, 0.096), (1.030, 1.031), (0.545, 0.522)),
          judge="Llama3", explanations="none"),
    _main("+ human-ex", "mjd", (0.238, 0.250, 0.269, 0.771),
          ((0.098, 0.099), (1.043, 1.039), (0.575, 0.556)), ((0.091, 0.092), (1.021, 1.019), (0.641, 0.616)),
          judge="Llama3", explanations="human"),
    _main("+ LF model-ex", "mjd", (0.295, 0.278, 0.310, 0.744),
          ((0.106, 0.107), (1.066, 1.063), (0.539, 0.533)), ((0.103, 0.105), (1.059, 1.058), (0.581, 0.571)),
          judge="Llama3", explanations="lf"),
    _main("+ VariErr LG model-ex", "mjd", (0.234, 0.247, 0.266, 0.760),
          ((0.097, 0.098), (1.041, 1.037), (0.558, 0.544)), ((0.089, 0.091), (1.016, 1.014), (0.633, 0.626)),
          judge="Llama3", explanations="varierr-lg"),
    _main("+ MNLI LG model-ex", "mjd", (0.242, 0.251, 0.275, 0.849),
          ((0.096, 0.097), (1.037, 1.034), (0.589, 0.580)), ((0.090, 0.092), (1.019, 1.018), (0.657, 0.645)),
          judge="Llama3", explanations="mnli-lg"),
    _main("GPT-4o MJD", "mjd", (0.265, 0.263, 0.289, 0.703),
          ((0.103, 0.096), (1.059, 1.029), (0.526, 0.517)), ((0.093, 0.092), (1.027, 1.018), (0.525, 0.521)),
          judge="GPT-4o", explanations="none"),
    _main("+ human-ex", "mjd", (0.187, 0.207, 0.223, 0.769),
          ((0.093, 0.098), (1.027, 1.036), (0.570, 0.552)), ((0.079, 0.080), (0.986, 0.987), (0.617, 0.617)),
          judge="GPT-4o", explanations="human"),
    _main("+ LF model-ex", "mjd", (0.252, 0.242, 0.275, 0.752),
          ((0.101, 0.102), (1.052, 1.047), (0.537, 0.545)), ((0.157, 0.167), (1.220, 1.244), (0.587, 0.561)),
          judge="GPT-4o", explanations="lf"),
    _main("+ VariErr LG model-ex", "mjd", (0.192, 0.209, 0.226, 0.761),
          ((0.092, 0.093), (1.026, 1.022), (0.554, 0.551)), ((0.088, 0.089), (1.013, 1.008), (0.618, 0.598)),
          judge="GPT-4o", explanations="varierr-lg"),
)


def _anli(label, kind, bert, roberta, **kw) -> PaperRow:
    values = {f"bert_{r}": v for r, v in zip(ANLI_COLUMNS, bert, strict=True)}
    values.update({f"roberta_{r}": v for r, v in zip(ANLI_COLUMNS, roberta, strict=True)})
    return PaperRow(label, kind, values=values, **kw)


# ---- "Can Model-EX Enhance Performance on OOD ANLI Test Set?" (weighted F1) -----------------------------------
ANLI_TABLE: tuple[PaperRow, ...] = (
    _anli("Zero-shot-LM", "reference", (0.170, 0.176, 0.197), (0.167, 0.167, 0.168), source="zero-shot"),
    _anli("MNLI-FT-LM", "reference", (0.220, 0.269, 0.293), (0.292, 0.262, 0.257), source="start-checkpoint"),
    _anli("ChaosNLI HJD", "baseline", (0.268, 0.289, 0.332), (0.357, 0.331, 0.338), source="chaosnli"),
    _anli("VariErr dist", "baseline", (0.302, 0.259, 0.319), (0.402, 0.311, 0.321), source="varierr"),
    _anli("MNLI dist", "baseline", (0.229, 0.260, 0.279), (0.317, 0.275, 0.281), source="mnli"),
    _anli("Llama3 MJD", "mjd", (0.246, 0.276, 0.306), (0.304, 0.297, 0.304), judge="Llama3", explanations="none"),
    _anli("+ human-ex", "mjd", (0.296, 0.289, 0.349), (0.400, 0.330, 0.344), judge="Llama3", explanations="human"),
    _anli("+ LF model-ex", "mjd", (0.292, 0.295, 0.328), (0.314, 0.262, 0.323), judge="Llama3", explanations="lf"),
    _anli("+ VariErr LG model-ex", "mjd", (0.305, 0.285, 0.349), (0.411, 0.324, 0.319), judge="Llama3",
          explanations="varierr-lg"),
    _anli("+ MNLI LG model-ex", "mjd", (0.284, 0.283, 0.321), (0.339, 0.287, 0.307), judge="Llama3",
          explanations="mnli-lg"),
    _anli("GPT-4o MJD", "mjd", (0.258, 0.263, 0.295), (0.309, 0.282, 0.302), judge="GPT-4o", explanations="none"),
    _anli("+ human-ex", "mjd", (0.351, 0.294, 0.332), (0.393, 0.324, 0.325), judge="GPT-4o", explanations="human"),
    _anli("+ LF model-ex", "mjd", (0.285, 0.283, 0.315), (0.350, 0.282, 0.310), judge="GPT-4o", explanations="lf"),
    _anli("+ VariErr LG model-ex", "mjd", (0.341, 0.293, 0.330), (0.393, 0.324, 0.323), judge="GPT-4o",
          explanations="varierr-lg"),
)


def _pref(label, kind, share, dist, roberta, **kw) -> PaperRow:
    values = {**_dist(*dist), **_ft("roberta", *roberta)}
    if share is not None:
        values["share"] = share
    return PaperRow(label, kind, values=values, **kw)


# ---- "Can Human Preference Lead to Better Explanation Selection?" (Llama3 judge) -----------------------------
# The share is the poster's percentage next to the method (slots filled by a matching model explanation).
PREFERENCE_TABLE: tuple[PaperRow, ...] = (
    _pref("Llama3 MJD", "mjd", None, (0.258, 0.261, 0.286, 0.684),
          ((0.092, 0.095), (1.025, 1.026), (0.531, 0.512)), judge="Llama3", explanations="none"),
    _pref("+ human ex", "mjd", None, (0.240, 0.249, 0.275, 0.750),
          ((0.089, 0.091), (1.014, 1.015), (0.618, 0.597)), judge="Llama3", explanations="human"),
    _pref("replace preferred: greedy", "preference", 0.7575, (0.241, 0.248, 0.274, 0.733),
          ((0.088, 0.090), (1.013, 1.013), (0.619, 0.594)), judge="Llama3", explanations="preferred-greedy"),
    _pref("replace preferred: representative", "preference", 0.5525, (0.240, 0.248, 0.274, 0.739),
          ((0.088, 0.091), (1.013, 1.014), (0.619, 0.597)), judge="Llama3",
          explanations="preferred-representative"),
    _pref("replace unpreferred: greedy", "preference", 0.685, (0.239, 0.247, 0.273, 0.752),
          ((0.087, 0.090), (1.011, 1.012), (0.623, 0.599)), judge="Llama3", explanations="unpreferred-greedy"),
    _pref("replace unpreferred: representative", "preference", 0.6325, (0.237, 0.246, 0.271, 0.761),
          ((0.088, 0.090), (1.011, 1.012), (0.621, 0.607)), judge="Llama3",
          explanations="unpreferred-representative"),
)


def _var(label, set_name, values) -> PaperRow:
    return PaperRow(label, "variability", source=set_name,
                    values=dict(zip(VARIABILITY_COLUMNS, values, strict=True)))


# ---- Variability of the explanation sets (same poster section) -----------------------------------------------
VARIABILITY_TABLE: tuple[PaperRow, ...] = (
    _var("human-ex", "human", (0.335, 0.098, 0.042, 0.767, 0.341, 0.140, 0.528, 0.520, 0.428)),
    _var("replaced preferred: greedy", "preferred-greedy",
         (0.416, 0.157, 0.082, 0.874, 0.488, 0.233, 0.540, 0.532, 0.474)),
    _var("replaced preferred: represent.", "preferred-representative",
         (0.392, 0.149, 0.089, 0.835, 0.426, 0.205, 0.542, 0.541, 0.466)),
    _var("replaced unpreferred: greedy", "unpreferred-greedy",
         (0.387, 0.130, 0.069, 0.841, 0.432, 0.196, 0.527, 0.528, 0.457)),
    _var("replaced unpreferred: represent.", "unpreferred-representative",
         (0.378, 0.130, 0.073, 0.837, 0.426, 0.195, 0.534, 0.532, 0.455)),
)

#: The datasets table of "Introduction & Method": name -> (instances, annotations per instance, explanations,
#: valid overlap), as printed.
DATASET_TABLE: dict[str, tuple[str, str, str, int]] = {
    "MNLI (Williams et al., 2018)": ("433K total, 40K multi-label", "1 or 5", "No", 341),
    "ChaosNLI (Nie et al., 2020a)": ("1.5K from each of αNLI, SNLI, MNLI", "100", "No", 341),
    "VariErr NLI (Weber-Genzel et al., 2024)": ("500", "4", "1 per label", 341),
    "ANLI test (Nie et al., 2020a)": ("1K (R1), 1K (R2), 1.2K (R3)", "1", "Yes (Rationale)", 0),
}

#: SPEC §7: recomputed from the released data with the definitions of SPEC §4 (5 decimals).
RECOMPUTED: dict[str, dict[str, float]] = {
    "varierr": {"kl": 3.60366, "jsd": 0.28215, "tvd": 0.28581},
    "mnli": {"kl": 1.24249, "jsd": 0.20921, "tvd": 0.21472},
}

#: (baseline, metric) cells of the poster that the data does not give (SPEC §7).
DISCREPANCIES: tuple[tuple[str, str], ...] = (("varierr", "tvd"), ("mnli", "jsd"), ("mnli", "tvd"))
