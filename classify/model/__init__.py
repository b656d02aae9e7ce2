"""What a trained classifier is: the model registry, model.pt and the inference API (the judge),
decoupled heads, test-time augmentation and ensembles. Below `train` (which makes these
files) and `evaluate` (which scores them)."""
