"""`rlvr report`: comparison figures and tables with confidence intervals, from the local results store only.

    rlvr report sweeps/popo.yaml                 # or a results directory such as runs/popo
    rlvr report --compare runs/popo-old runs/popo   # what changed between two sweeps, with significance

Writes reports/<name>/report.md, a self-contained report.html (figures embedded), figures/*.png and *.svg,
and data.json (every number in the tables). Statistics (harness/analysis/stats.py): mean and 95% percentile-bootstrap
CIs over seeds, curves interpolated onto a common budget grid, budget-to-target with CIs, IQM with
stratified bootstrap CIs and probability of improvement across tasks.
"""
from harness.analysis.report.document import compare, render_report
from harness.analysis.report.results import Results, Run, load_results
from harness.analysis.report.statistics import decide_claim, decide_variance

__all__ = ["Results", "Run", "compare", "decide_claim", "decide_variance", "load_results", "render_report"]
