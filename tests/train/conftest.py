import importlib.util
import sys
from pathlib import Path

import pytest

JOB_PATH = Path(__file__).with_name("train_job.py")


def _load_job():
    if "train_job" in sys.modules:
        return sys.modules["train_job"]
    spec = importlib.util.spec_from_file_location("train_job", JOB_PATH)
    module = importlib.util.module_from_spec(spec)
    sys.modules["train_job"] = module  # spawned DDP workers unpickle by module name
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def job():
    return _load_job()


@pytest.fixture(scope="session")
def synth(job):
    """(train 512, test 128) synthetic gratings, 1x28x28, 10 classes."""
    return job.datasets(n_train=512)
