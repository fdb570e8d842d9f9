"""ECE and the confusion matrix against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autokd.evaluate.metrics import confusion_matrix, ece

# confidence (the max probability), and whether the arg-max is the label
PROBS = torch.tensor([
    [0.99, 0.005, 0.005],  # .99 right
    [0.91, 0.05, 0.04],    # .91 wrong (label 1)
    [0.95, 0.03, 0.02],    # .95 right
    [0.02, 0.95, 0.03],    # .95 right
    [0.15, 0.75, 0.10],    # .75 right
    [0.72, 0.18, 0.10],    # .72 right
    [0.30, 0.15, 0.55],    # .55 wrong (label 0)
    [0.25, 0.55, 0.20],    # .55 wrong (label 2)
], dtype=torch.float64)
LABELS = torch.tensor([0, 1, 0, 1, 1, 0, 0, 2])
LOGITS = PROBS.log()  # softmax(log p) = p


def test_ece_ten_bins_by_hand():
    # (0.9, 1]: .99 .91 .95 .95 -> accuracy 3/4, confidence 0.95: |0.75 - 0.95| = 0.2, weight 4/8
    # (0.7, 0.8]: .75 .72 -> accuracy 1, confidence 0.735: 0.265, weight 2/8
    # (0.5, 0.6]: .55 .55 -> accuracy 0, confidence 0.55: 0.55, weight 2/8
    expected = 4 / 8 * 0.2 + 2 / 8 * 0.265 + 2 / 8 * 0.55
    assert expected == pytest.approx(0.30375, abs=1e-15)
    assert ece(LOGITS, LABELS, n_bins=10) == pytest.approx(expected, abs=1e-12)


def test_ece_fifteen_bins_by_hand():
    # edges k/15: (14/15, 1]: .99 .95 .95 all right, confidence 2.89/3; (13/15, 14/15]: .91 wrong;
    # (11/15, 12/15]: .75 right; (10/15, 11/15]: .72 right; (8/15, 9/15]: .55 .55 wrong
    expected = (3 / 8 * abs(1 - 2.89 / 3) + 1 / 8 * 0.91 + 1 / 8 * 0.25 + 1 / 8 * 0.28 + 2 / 8 * 0.55)
    assert expected == pytest.approx(0.33125, abs=1e-15)
    assert ece(LOGITS, LABELS) == pytest.approx(expected, abs=1e-12)  # 15 bins is the default


def test_ece_of_confident_correct_predictions_is_zero():
    logits = torch.tensor([[100.0, 0.0, 0.0], [0.0, 100.0, 0.0]])
    assert ece(logits, torch.tensor([0, 1])) == pytest.approx(0.0, abs=1e-12)


def test_confusion_matrix_rows_are_true_columns_predicted_with_every_class():
    pred = torch.tensor([0, 0, 1, 2, 2, 2])
    y = torch.tensor([0, 1, 1, 2, 0, 2])
    logits = torch.nn.functional.one_hot(pred, 4).float()
    expected = np.array([
        [1, 0, 1, 0],  # true 0: predicted 0 once, 2 once
        [1, 1, 0, 0],  # true 1: predicted 0 once, 1 once
        [0, 0, 2, 0],  # true 2: predicted 2 twice
        [0, 0, 0, 0],  # class 3 never seen: still a row and a column
    ])
    cm = confusion_matrix(logits, y, num_classes=4)
    assert cm.shape == (4, 4) and np.array_equal(cm, expected)
