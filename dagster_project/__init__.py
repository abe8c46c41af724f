"""A code location that runs the entropy-assets selection pipeline on the sample bundled in ``data/sample``."""
