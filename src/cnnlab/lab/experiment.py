"""What an experiment is: a claim, configurations per mode, a ``run(ctx) -> Result`` and a verdict rule.

An experiment is a plain function of its configuration that writes one self-contained directory
(``result.json``, PNG figures, the run directories it trained), so any executor can farm it out. The
verdict is never typed in: ``verdict(numbers) -> Verdict`` is a rule written beside the experiment and
applied by the runner to the measured numbers (and re-applied whenever a cached result is read).

```python
@register_experiment(
    "stack3x3", claim=Claim(quote="3x3 필터 3회 적용 ⇒ 7x7 필터 적용 효과", paraphrase="...", seed="001_....txt"),
    configs={"quick": {"channels": [16, 64]}, "full": {"channels": [16, 64, 256]}},
    cost={"quick": 30, "full": 600}, verdict=lambda n: Verdict.from_bool(n["ratio"] == 27 / 49, "..."))
def stack3x3(ctx: Context) -> Result: ...
```
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import ConfigError

__all__ = ["MODES", "VERDICTS", "Claim", "Context", "Experiment", "Result", "Verdict", "get_experiment",
           "list_experiments", "read_result", "register_experiment", "unregister_experiment"]

MODES = ("quick", "full")
VERDICTS = ("confirmed", "partly", "not confirmed", "not measurable")


@dataclass(frozen=True)
class Claim:
    """The lecture's sentence (Korean, verbatim), an English paraphrase, and the seed file it is from."""

    quote: str
    paraphrase: str
    seed: str


@dataclass(frozen=True)
class Verdict:
    """``status`` is one of :data:`VERDICTS`; ``reason`` states the numbers that decided it."""

    status: str
    reason: str

    def __post_init__(self) -> None:
        if self.status not in VERDICTS:
            raise ConfigError(f"verdict status {self.status!r} is not one of {', '.join(VERDICTS)}")

    def as_dict(self) -> dict[str, str]:
        return {"status": self.status, "reason": self.reason}


@dataclass
class Result:
    """What ``run`` returns. ``numbers``: the measurements the verdict rule reads (JSON-able);
    ``setup``: what was run, in words (subset, epochs, seeds); ``table``: rows for the report (dicts
    with the same keys); ``figures`` is filled by :meth:`Context.save_figure`."""

    numbers: dict[str, Any]
    setup: str
    table: list[dict[str, Any]] = field(default_factory=list)
    figures: list[str] = field(default_factory=list)


@dataclass
class Context:
    """What a running experiment sees: its configuration, its own (temporary) directory, and the
    results root where the other experiments' directories are (for experiments that read them)."""

    name: str
    mode: str
    config: dict[str, Any]
    out_dir: Path
    results_root: Path
    log: Callable[[str], None] = print
    figures: list[str] = field(default_factory=list)

    @property
    def seeds(self) -> list[int]:
        return list(range(int(self.config.get("seeds", 1))))

    def run_dir(self, name: str) -> Path:
        """Where a training run of this experiment writes (inside the experiment's directory)."""
        return self.out_dir / "runs" / name

    def save_figure(self, fig: Any, filename: str) -> str:
        """Save a matplotlib figure atomically as ``filename`` (PNG, every text >= 14 pt) for the report."""
        from cnnlab._io import save_figure
        from cnnlab.lab.style import finalize

        save_figure(finalize(fig), self.out_dir / filename, dpi=100, bbox_inches="tight")
        self.figures.append(filename)
        return filename

    def read_other(self, name: str) -> dict[str, Any] | None:
        """Another experiment's ``result.json`` under the results root, or None if it has not run (ok)."""
        data = read_result(self.results_root / name)
        return data if data and data.get("status") == "ok" else None


@dataclass(frozen=True)
class Experiment:
    """A registered experiment: see the module docstring."""

    name: str
    claim: Claim
    run: Callable[[Context], Result]
    verdict: Callable[[dict[str, Any]], Verdict]
    configs: dict[str, dict[str, Any]]
    cost: dict[str, float]  # estimated wall seconds per mode on 2 CPU cores
    reads: tuple[str, ...] = ()  # experiments whose results this one reads (run after them)
    version: int = 1  # bump when the code changes what the numbers mean: invalidates the cache
    inputs: Callable[[dict[str, Any]], str] | None = None  # fingerprint of outside inputs (files it reads)

    def config(self, mode: str, seeds: int | None = None) -> dict[str, Any]:
        """The configuration for ``mode``; ``seeds`` overrides the seed count of training experiments."""
        if mode not in MODES:
            raise ConfigError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        cfg = dict(self.configs[mode])
        if seeds is not None and "seeds" in cfg:
            if seeds < 1:
                raise ConfigError(f"--seeds must be at least 1, got {seeds}")
            cfg["seeds"] = seeds
        return cfg

    @property
    def summary(self) -> str:
        """The claim in one line (the paraphrase)."""
        return self.claim.paraphrase.split("\n")[0]


_REGISTRY: dict[str, Experiment] = {}


def register_experiment(name: str, *, claim: Claim, configs: dict[str, dict[str, Any]], cost: dict[str, float],
                        verdict: Callable[[dict[str, Any]], Verdict], reads: tuple[str, ...] = (),
                        version: int = 1, inputs: Callable[[dict[str, Any]], str] | None = None,
                        ) -> Callable[[Callable[[Context], Result]], Callable[[Context], Result]]:
    """Decorator registering ``run(ctx) -> Result`` as the experiment ``name``; ``inputs(config)`` fingerprints
    what it reads from outside the lab (a changed fingerprint reruns it instead of returning the cached result)."""
    missing = [m for m in MODES if m not in configs or m not in cost]
    if missing:
        raise ConfigError(f"experiment {name!r} needs configs and cost for modes {', '.join(missing)}")

    def wrap(run: Callable[[Context], Result]) -> Callable[[Context], Result]:
        if name in _REGISTRY and _REGISTRY[name].run is not run:
            raise ConfigError(f"experiment {name!r} is registered twice")
        _REGISTRY[name] = Experiment(name, claim, run, verdict, configs, cost, tuple(reads), version, inputs)
        return run

    return wrap


def unregister_experiment(name: str) -> None:
    """Remove ``name`` from the registry (tests that register throw-away experiments clean up with it)."""
    _REGISTRY.pop(name, None)


def list_experiments() -> list[Experiment]:
    """Every registered experiment (importing :mod:`cnnlab.lab` registers the built-in ones); the ones that
    read others' results come last."""
    return sorted(_REGISTRY.values(), key=lambda e: (bool(e.reads), list(_REGISTRY).index(e.name)))


def get_experiment(name: str) -> Experiment:
    if name not in _REGISTRY:
        import difflib

        close = difflib.get_close_matches(name, list(_REGISTRY), n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise ConfigError(f"unknown experiment {name!r}{hint}; `cnnlab lab list` shows them")
    return _REGISTRY[name]


def read_result(directory: str | os.PathLike) -> dict[str, Any] | None:
    """The ``result.json`` of one experiment directory, or None where there is none (or it is unreadable)."""
    path = Path(directory) / "result.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
