"""Classification moved onto the task seam with its figures unchanged.

The expected figures below were produced by sslkit at commit 61ba87e, *before* the package move
and the task seam (``sslkit.engine.finetune.run_finetuning``), by exactly the runs this test
makes: fixed seeds, tiny synthetic data, the tiny two-stage CNN, one thread. Any change in what
classification fine-tuning computes (the head, the loss, the order of batches, the epoch chosen,
the probabilities) shows up here.
"""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.eval_helpers import IMAGE_SIZE, tiny_encoder_dir, tiny_npz, tiny_plugins
from sslkit.finetuning.config import FinetuneConfig
from sslkit.finetuning.run import run_finetuning

BEFORE_THE_MOVE = {'full': {'probs_sq': 3.336754,
          'probs_sum': 10.0,
          'scalars': {'accuracy': 0.3,
                      'auroc': 0.587302,
                      'balanced_accuracy': 0.333333,
                      'ece': 0.048284,
                      'macro_f1': 0.153846},
          'selected': 3},
 'linear': {'probs_sq': 3.808524,
            'probs_sum': 10.0,
            'scalars': {'accuracy': 0.4,
                        'auroc': 0.650794,
                        'balanced_accuracy': 0.361111,
                        'ece': 0.329953,
                        'macro_f1': 0.333333},
            'selected': 4},
 'linear-scratch': {'probs_sq': 3.770101,
                    'probs_sum': 10.0,
                    'scalars': {'accuracy': 1.0,
                                'auroc': 1.0,
                                'balanced_accuracy': 1.0,
                                'ece': 0.522091,
                                'macro_f1': 1.0},
                    'selected': 4},
 'paper': {'probs_sq': 3.403428,
           'probs_sum': 10.0,
           'scalars': {'accuracy': 0.3,
                       'auroc': 0.958333,
                       'balanced_accuracy': 0.333333,
                       'ece': 0.076704,
                       'macro_f1': 0.153846},
           'selected': 4}}


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    plugins = tiny_plugins()
    tmp = tmp_path_factory.mktemp("golden")
    data = "npz:" + str(tiny_npz(tmp / "tiny.npz"))
    return plugins, data, tiny_encoder_dir(tmp / "enc", plugins)


@pytest.mark.parametrize("run", sorted(BEFORE_THE_MOVE))
def test_classification_figures_are_those_from_before_the_task_seam(setting, run):
    plugins, data, encoder = setting
    protocol, _, variant = run.partition("-")
    values = dict(encoder=str(encoder), data=data, protocol=protocol, labels=12, epochs=4, batch_size=8,
                  image_size=IMAGE_SIZE, device="cpu", quiet=True, threads=1, seed=3)
    if protocol == "full":
        values["epochs"] = 3
    if variant == "scratch":
        values.update(from_scratch=True, select="best-val")
    result = run_finetuning(FinetuneConfig(**values), plugins)
    expected = BEFORE_THE_MOVE[run]
    probs = np.asarray(result.test_predictions["probs"], dtype=np.float64)
    scalars = {k: round(float(v), 6) for k, v in result.metrics["test"].scalars.items()}
    assert scalars == expected["scalars"]
    assert result.selected_epoch == expected["selected"]
    assert float(probs.sum()) == pytest.approx(expected["probs_sum"], abs=1e-5)
    assert float((probs ** 2).sum()) == pytest.approx(expected["probs_sq"], abs=1e-5)
