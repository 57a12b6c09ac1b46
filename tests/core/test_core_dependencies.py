"""The exact library features sslkit calls, on the installed versions: what pyproject.toml's
floors promise (a release below a floor fails here instead of misbehaving quietly)."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import pytest


def test_albumentations_has_area_for_downscale_in_both_presets_transforms():
    from sslkit.data.transforms import albumentations

    A = albumentations()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # albumentations only warns about an unknown argument
        A.RandomResizedCrop(size=(32, 32), scale=(0.7, 1.0), ratio=(0.85, 1.18), area_for_downscale="image")
        A.SmallestMaxSize(max_size=32, area_for_downscale="image")


def test_albumentations_update_check_is_off():
    code = ("import os; from sslkit.data.transforms import albumentations; albumentations(); "
            "print(os.environ['NO_ALBUMENTATIONS_UPDATE'])")
    env = {k: v for k, v in os.environ.items() if k != "NO_ALBUMENTATIONS_UPDATE"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert out.stdout.strip() == "1" and out.stderr.strip() == "", out.stderr  # no stray lines


def test_a_users_own_update_check_setting_wins(monkeypatch):
    from sslkit.data.transforms import albumentations

    monkeypatch.setenv("NO_ALBUMENTATIONS_UPDATE", "true")  # also off, so no network here
    albumentations()
    assert os.environ["NO_ALBUMENTATIONS_UPDATE"] == "true"


def test_torch_has_the_device_generic_grad_scaler_and_the_schedulers():
    import torch
    from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LinearLR, LRScheduler, MultiStepLR, SequentialLR

    scaler = torch.amp.GradScaler("cpu", enabled=False)  # torch >= 2.3
    assert not scaler.is_enabled()
    assert all(issubclass(c, LRScheduler) for c in (ConstantLR, CosineAnnealingLR, LinearLR, MultiStepLR, SequentialLR))


def test_timm_builds_feature_extractors():
    import timm

    model = timm.create_model("resnet10t", pretrained=False, features_only=True, in_chans=1)
    assert len(model.feature_info.channels()) == len(model.feature_info.reduction()) >= 4


def test_shuffled_stratified_group_folds_keep_each_class_share():
    # scikit-learn before 1.8 shuffled the groups' class counts apart from the groups themselves,
    # so with shuffle=True the folds were not stratified (sslkit's grouped folds use shuffle=True)
    import numpy as np
    from sklearn.model_selection import StratifiedGroupKFold

    rng = np.random.default_rng(0)
    y, groups = rng.integers(0, 3, 90), rng.integers(0, 30, 90)  # 30 groups of mixed classes
    expected = np.bincount(y, minlength=3) / 5
    for seed in range(3):
        folds = StratifiedGroupKFold(n_splits=5, shuffle=True, random_state=seed).split(y, y, groups=groups)
        worst = max(np.abs(np.bincount(y[test], minlength=3) - expected).max() for _, test in folds)
        assert worst < 3.5, (seed, worst)  # 1.8+: at most 2.8 here; 1.7: up to 6.6


@pytest.mark.parametrize("name, floor", [("torch", (2, 10)), ("albumentations", (2, 0, 8)), ("scikit-learn", (1, 8))])
def test_installed_versions_meet_the_floors(name, floor):
    from importlib.metadata import version

    parts = tuple(int("".join(c for c in p if c.isdigit()) or 0) for p in version(name).split("+")[0].split(".")[:3])
    assert parts >= floor
