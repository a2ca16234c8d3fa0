"""Group `analyses`: the paper's §2 analyses, ternary plots and the side-by-side paper report (SPEC §6).

- `replacement.py`: `replacement_curves[<judge>]`, r of the 4 human explanations replaced by model or noise
  explanations; the judge's MJD per r against the HJD (table `replacement`) and a curve per judge.
- `preference.py`: `preference_selection[<judge>]`, the human validation of Llama3's explanations; slots refilled
  with preferred / unpreferred model explanations (greedy, representative); the judge's MJDs on them.
- `variability.py`: `explanation_variability`, lexical / syntactic / semantic similarity within and between
  explanation sets (table `variability`).
- `plots.py`: `ternary_plots`, HJD and MJD of every stored MJD partition on the simplex.
- `report.py`: `paper_report`, every poster table with the paper's values and ours.
- `common.py`: sizes per profile (`ANALYSIS_SIZES`: tiny and demo use a few items and one explanation order per
  item, the first order the MJD assets judge too, so the r = 0 and r = 4 prompts come from the call cache; paper
  uses all), the judge of a partition, stored inputs, judging sets with progress lines, comparison rows.

The two judge analyses are partitioned by `judges`: a new judge is a new partition and every row names its
judge partition. They are not eager (they call judges, which may cost money) and run from the main job, the UI
or `hlv run`. Each *our reading* rule of SPEC §6 is a field of the asset's config. Every asset reports its rows
as table metadata and its plots inline on the asset page.
"""
