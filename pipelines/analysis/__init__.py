"""Pure statistics over pandas/numpy: no Prefect, no Great Expectations, no files.

Every function here works in a notebook on plain DataFrames or arrays (respondents
x items, already reverse-keyed; NaN for unanswered), without instruments or a
program folder. Conventions and R equivalents are stated in each docstring and in
README.md ("The statistics in a notebook").

Examples
--------
>>> import pandas as pd
>>> from pipelines.analysis import cronbach_alpha, paired_change
>>> items = pd.DataFrame({"a": [1, 2, 3, 4, 5], "b": [2, 3, 3, 5, 4], "c": [1, 3, 2, 4, 5]})
>>> round(cronbach_alpha(items), 3)
0.938
>>> round(paired_change([10, 12, 14, 16], [12, 15, 15, 19])["d_z"], 2)
2.35
"""

from pipelines.analysis.change import (
    attrition_effect, holm, paired_change, rci_reliability, rci_s_diff, reliable_change,
    reliable_change_index,
)
from pipelines.analysis.factor import omega_hierarchical, omega_total
from pipelines.analysis.gains import hake_gain, individual_gains, normalized_change
from pipelines.analysis.items import (
    knowledge_item_statistics, likert_item_statistics, upper_lower_index,
)
from pipelines.analysis.models import d_z_variance, random_effects_meta
from pipelines.analysis.reliability import (
    bootstrap_alpha_ci, cronbach_alpha, feldt_ci, guttman_lambda6, kr20, kr21,
    reliability_many, scale_reliability, standard_error_of_measurement, standardized_alpha,
)

__all__ = [
    # reliability of one scale (or many at once)
    "cronbach_alpha", "standardized_alpha", "guttman_lambda6", "kr20", "kr21", "omega_total",
    "omega_hierarchical", "feldt_ci", "bootstrap_alpha_ci", "standard_error_of_measurement",
    "scale_reliability", "reliability_many",
    # item analysis
    "likert_item_statistics", "knowledge_item_statistics", "upper_lower_index",
    # change between two waves
    "paired_change", "holm", "reliable_change", "reliable_change_index", "rci_s_diff",
    "rci_reliability", "attrition_effect",
    # knowledge gains
    "hake_gain", "individual_gains", "normalized_change",
    # meta-analysis across cohorts
    "random_effects_meta", "d_z_variance",
]
