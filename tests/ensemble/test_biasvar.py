"""Domingos (2000) 0-1 bias/variance: a hand-computed 3-class case, the exact identity, the 2-class case."""

import pytest
import torch

from cnnlab.ensemble import decompose, main_prediction

# 4 models (rows) x 4 test images (columns), 3 classes; true labels below.
PREDS = torch.tensor([[0, 0, 1, 2],
                      [0, 0, 1, 2],
                      [0, 0, 0, 1],
                      [2, 1, 2, 1]])
LABELS = torch.tensor([0, 1, 2, 0])
# Per image (y_m = mode, ties -> lowest class):
#  0: y_m 0 = t  unbiased, V 1/4, loss 1/4
#  1: y_m 0 != 1 biased,   V 1/4, P(y=t, y!=y_m) 1/4 -> c2 V = -1/4, loss 3/4
#  2: y_m 1 != 2 biased,   V 2/4, P(y=t, y!=y_m) 1/4 -> c2 = -1/2, c2 V = -1/4, loss 3/4
#  3: y_m 1 (tie 1/2) != 0 biased, V 2/4, P(y=t, y!=y_m) 0 -> c2 V = 0, loss 1


def test_hand_computed_three_class_case():
    assert main_prediction(PREDS, 3).tolist() == [0, 0, 1, 1]
    d = decompose(PREDS, LABELS, 3)
    assert d.loss == pytest.approx(2.75 / 4, abs=1e-12)
    assert d.bias == pytest.approx(3 / 4, abs=1e-12)
    assert d.variance == pytest.approx(1.5 / 4, abs=1e-12)  # unsigned (mlxtend): bias + it = 1.125 != loss
    assert d.var_unbiased == pytest.approx(0.25 / 4, abs=1e-12)
    assert d.var_biased == pytest.approx(0.5 / 4, abs=1e-12)
    assert d.net_variance == pytest.approx(-0.25 / 4, abs=1e-12)
    assert d.loss == pytest.approx(d.bias + d.net_variance, abs=1e-12)
    assert (d.models, d.n) == (4, 4)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_loss_is_bias_plus_net_variance_exactly(k):
    g = torch.Generator().manual_seed(k)
    labels = torch.randint(0, k, (300,), generator=g)
    # models that are right ~60 % of the time and otherwise guess: every kind of image occurs
    guess = torch.randint(0, k, (9, 300), generator=g)
    preds = torch.where(torch.rand(9, 300, generator=g) < 0.6, labels.expand(9, -1), guess)
    d = decompose(preds, labels, k)
    assert 0 < d.bias < 1 and d.var_biased > 0 and d.var_unbiased > 0
    assert d.loss == pytest.approx(d.bias + d.net_variance, abs=1e-12)
    assert d.loss == pytest.approx(float((preds != labels).double().mean()), abs=1e-12)
    if k == 2:  # Theorem 2: c2 = -1 on biased images, so the subtracted variance is all of theirs
        ym = main_prediction(preds, 2)
        v = (preds != ym).double().mean(0)
        assert d.var_biased == pytest.approx(float((v * (ym != labels)).mean()), abs=1e-12)
    else:  # K > 2: only disagreements that hit the true label are subtracted (c2 = -P(y=t | y != y_m))
        assert d.var_biased < d.variance - d.var_unbiased


def test_bad_shapes_are_one_line_errors():
    from cnnlab.errors import ConfigError

    with pytest.raises(ConfigError, match="predictions"):
        decompose(torch.zeros(3, 5, dtype=torch.long), torch.zeros(4, dtype=torch.long))
