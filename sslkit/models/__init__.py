"""Encoders, decoders and the predictor (encoder + decoder) used for context prediction."""
