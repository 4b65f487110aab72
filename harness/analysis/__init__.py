"""Reading results back: statistics (CIs, paired tests, MDEs, IQM) and the reports."""
