"""Fit data-vs-parameter scaling laws L(N, D) to training runs, with intervals and plots.

Points (``points``) -> parametric fits (``fit``, forms in ``laws``, batched L-BFGS in
``optimize``) -> bootstrap intervals and held-out checks (``fit``), isoFLOP profiles
(``isoflop``), repeated data (``data_constrained``) -> figures (``plots``) and ``trilm fit``
(``cli``). See docs/scaling.md.
"""
