"""Group `analyses`: the paper's §2 analyses (replacement, human preference, variability), ternary plots and
the side-by-side paper report."""
