"""Train / optimise / validate framework around the lookup engine.

- :mod:`.train`: run the engine over large case files with a process pool, a SQL result store and
  checkpoint/resume (``nhs-lookup train``);
- :mod:`.optimize`: tune :class:`~nhs_lookup.config.ScoringConfig` with an Optuna study, parsing and
  retrieval done once per case (``nhs-lookup optimize``);
- :mod:`.validate`: the sanity check with a CI gate (``nhs-lookup validate``).
"""
