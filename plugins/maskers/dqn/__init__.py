"""Built-in masker ``dqn``: Intelligent Masking (Bahrami et al., MLMI 2022).

A deep Q-learning agent learns where masking hurts the reconstruction most. The method lives in
this package's modules (``masker``, ``qnetwork``, ``geometry``, ``exploration``, ``reward``) and in
what it shares with the other learned maskers (``sslkit_plugins.maskers._cell_network``,
``_heat_map``, ``_learned``, ``_learned_state``); this module only registers it by reference, so
listing maskers imports no torch.
"""

from __future__ import annotations

from sslkit.hookspecs import hookimpl

DESCRIPTION = (
    "Intelligent Masking (MLMI 2022): a Q-learning agent predicts from the unmasked image the "
    "reconstruction loss of masking each block of a grid and masks where it is highest"
)

OPTIONS = {
    "network": "Q-network: light (small CNN on a downsampled image) or paper (the authors' 0.66 M-parameter CNN)",
    "grid": "G, the side of the G x G grid of cells Q is predicted on (the paper: 9 at 300 px); under --encoding "
            "sparse, when G does not nest in the encoder's cell grid, each block is snapped to the encoder's cells",
    "block": "k: each mask is a k x k block of cells, always fully inside the image (the paper: 2)",
    "cells": "blocks per image: the top-n corners (the paper: 1)",
    "val_block": "k in validation (the paper: 3); unset = block",
    "exploration": "paper (uniform for the first explore_fraction, then greedy), epsilon (decaying epsilon-greedy) or softmax (sampling)",
    "explore_fraction": "share of training spent exploring (paper: random phase; epsilon: decay span)",
    "epsilon_start": "epsilon at the start (exploration=epsilon)",
    "epsilon_end": "epsilon after explore_fraction of training (exploration=epsilon)",
    "temperature": "softmax temperature over the per-image standardised block values (exploration=softmax)",
    "reward": "image (the paper: whole-image sum of squared error) or masked (error on the masked pixels only)",
    "normalize_reward": "standardise rewards by a running mean/std (false = the paper's raw reward)",
    "lr": "the agent's Adam learning rate",
    "lr_gamma": "the agent's learning-rate factor at 1/3 and 2/3 of training",
    "downsample": "light network: the side in px the image is resized to",
}


@hookimpl
def register_maskers(register):
    register("dqn", "sslkit_plugins.maskers.dqn.masker:DQNMasker", DESCRIPTION, options=OPTIONS)
