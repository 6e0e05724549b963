"""The lab: every lecture claim tested by a reproducible experiment with a verdict computed from numbers.

```python
from cnnlab.lab import list_experiments, run_experiments
run_experiments(["stack3x3", "depthwise"], mode="quick", root="lab")   # lab/stack3x3/result.json, *.png
```
``cnnlab lab list`` / ``cnnlab lab run NAME...|all [--quick|--full]``; ``cnnlab report lab/`` renders them.
"""

import cnnlab.lab.experiments  # noqa: F401  (registers the built-in experiments)
from cnnlab.lab.experiment import (
    Claim,
    Context,
    Experiment,
    Result,
    Verdict,
    get_experiment,
    list_experiments,
    read_result,
    register_experiment,
)
from cnnlab.lab.runner import RunSummary, config_hash, run_experiment, run_experiments

__all__ = ["Claim", "Context", "Experiment", "Result", "RunSummary", "Verdict", "config_hash", "get_experiment",
           "list_experiments", "read_result", "register_experiment", "run_experiment", "run_experiments"]
