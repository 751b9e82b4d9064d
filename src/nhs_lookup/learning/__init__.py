"""What the lookup engine can learn from labelled mappings: a site's shorthand (token -> catalogue
words), a correctness model behind ``confidence``, the no-match and auto-accept thresholds, saved as one
model file.

- :mod:`.associations` learns token -> catalogue-term rewrites from labelled pairs;
- :mod:`.features` describes one answer (raw score, margin, slots stated and carried, review flag, ...);
- :mod:`.calibration` is the correctness model (logistic on answer features, then isotonic) as numbers;
- :mod:`.crossval` builds grouped / per-hospital folds and runs honest cross-validation;
- :mod:`.fit` ties them together (out-of-fold answers, cross-fitting, threshold choice);
- :mod:`.model` is the versioned JSON model file and the engine built from it.
"""
