"""What the app (and the benchmark scripts) run on top of the library: the app's services.

* :mod:`core.services.explore`: one attack on a few images, for the explorer page;
* :mod:`core.services.compare`: SSIM-shaped against L-inf perturbations at matched damage;
* :mod:`core.services.fairness_demo`: the bundled fairness demo and "train now";
* :mod:`core.services.jobs`: background jobs with progress and cancelling, bounded per server.

They import the library (:mod:`core.attacks`, :mod:`core.measures`, :mod:`core.training`, ...),
never the other way round, and never streamlit. The pages' plotly figures live beside the pages
(``pages/ui/figures.py``): only pages draw them.
"""
