"""Validation and ensembles on top of the training engine: every fold, member and round is a ``fit()`` run.

```python
from cnnlab.ensemble import cross_validate, bag, boost, bias_variance, ensemble_runs, bootstrap_accuracy
from cnnlab.train import get_recipe
cfg = get_recipe("fashion-fast")
cv = cross_validate(cfg, folds=5)                   # cv.mean["top1"], cv.std["top1"], cv.folds[i].metrics
ens = bag(cfg, members=5, vote="soft")              # ens.top1, ens.mean_member, ens.gain, ens.members
sam = boost(cfg.replace(epochs=1), rounds=10)       # sam.rounds[m].alpha / .weighted_error / .ensemble_top1
bv = bias_variance(cfg, models=5, sweep="epochs", values=[1, 2, 4])   # bv.points[i].decomposition
ensemble_runs(["runs/a", "runs/b", "runs/c"], vote="hard", tta="flip")  # any saved run directories
ensemble_runs(snapshot_paths("runs/cyc"))           # snapshot ensemble of a schedule="cyclic", cycles=M run
```
"""

from cnnlab.ensemble.bagging import bag
from cnnlab.ensemble.biasvar import (
    BiasVariance,
    BiasVarianceResult,
    bias_variance,
    decompose,
    main_prediction,
)
from cnnlab.ensemble.boosting import BoostResult, BoostRound, boost, samme_alpha, samme_update
from cnnlab.ensemble.bootstrap import BootstrapResult, Interval, bootstrap_accuracy, predict_labels
from cnnlab.ensemble.combine import (
    EnsembleResult,
    Member,
    MemberScore,
    check_compatible,
    ensemble_runs,
    evaluate_ensemble,
    load_member,
    member_probs,
    snapshot_paths,
    vote,
)
from cnnlab.ensemble.cv import CVResult, FoldResult, cross_validate
from cnnlab.ensemble.members import DataSource, MemberData, MemberJob, MemberRun, load_data, run_members

__all__ = [
    "BiasVariance", "BiasVarianceResult", "BoostResult", "BoostRound", "BootstrapResult", "CVResult", "DataSource",
    "EnsembleResult", "FoldResult", "Interval", "Member", "MemberData", "MemberJob", "MemberRun", "MemberScore",
    "bag", "bias_variance", "boost", "bootstrap_accuracy", "check_compatible", "cross_validate", "decompose",
    "ensemble_runs", "evaluate_ensemble", "load_data", "load_member", "main_prediction", "member_probs",
    "predict_labels", "run_members", "samme_alpha", "samme_update", "snapshot_paths", "vote",
]
