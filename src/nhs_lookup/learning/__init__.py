"""What the lookup engine can learn from labelled mappings: a site's shorthand (token -> catalogue
words), a calibration map behind ``confidence`` and the no-match threshold, saved as one model file.

- :mod:`.associations` learns token -> catalogue-term rewrites from labelled pairs;
- :mod:`.calibration` fits an isotonic map from the engine's raw confidence to P(correct);
- :mod:`.crossval` builds grouped / per-hospital folds and runs honest cross-validation;
- :mod:`.fit` ties them together (out-of-fold calibration, threshold choice);
- :mod:`.model` is the versioned JSON model file and the engine built from it.
"""
