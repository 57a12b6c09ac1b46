"""Downstream evaluation: metrics, k-NN, fine-tuning protocols."""
