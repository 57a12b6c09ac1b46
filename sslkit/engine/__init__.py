"""Training engines: pretraining (and later fine-tuning), checkpoints, logging."""
