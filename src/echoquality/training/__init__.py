"""Training the quality network: from inference results to a trained ``best_model.pt``.

- ``selection``: which scored clips become training examples (pure rules, human labels).
- ``trainset``: writing ``training_data/`` (clips, annotations, analysis); ``build_training_set``.
- ``dataset``, ``augment``, ``split``: clips for torch, uint8 augmentation, patient-grouped split.
- ``data``, ``finetune``, ``loop``, ``callbacks``, ``checkpoint``, ``tracking``, ``distributed``,
  ``report``: the parts of a training run; ``train.train(cfg)`` wires them together.
"""
