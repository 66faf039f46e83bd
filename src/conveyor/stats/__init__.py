"""Pure statistics shared by the offline gates, rollout analysis and live monitoring.

    metrics    a model's metrics recomputed from its predictions; the change formula
    paired     a candidate against a baseline on the same examples (bootstrap, DeLong, McNemar)
    unpaired   a candidate against a baseline on different samples (rollouts: proportions,
               means, ranks, latency quantiles)
    drift      has a column's distribution moved between a reference and a current sample?
    frames     drift of every column of two DataFrames
    binned     drift computed from window profiles (bin and category counts), never raw rows
    distributions  the p-values' distributions (KS, Kolmogorov, chi-squared) without scipy

Plain values in, frozen values out: no files, sockets or clocks. numpy is imported by the
modules, scipy only inside the functions that need it, and this package imports none of them.
"""
