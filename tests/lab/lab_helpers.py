"""Shared by the lab tests: run one experiment with a tiny configuration (not its registered one)."""

from cnnlab.lab import Context, get_experiment


def run_tiny(name, config, out_dir, require_figure=False):
    """Run experiment ``name`` with ``config`` in ``out_dir`` (uncached) and apply its rule; every figure it saved
    must be a real PNG (> 1 kB), and with ``require_figure`` there must be one. Returns ``(result, verdict)``."""
    exp = get_experiment(name)
    ctx = Context(name, "quick", config, out_dir, out_dir, log=lambda m: None)
    result = exp.run(ctx)
    assert ctx.figures or not require_figure, f"{name} saved no figure"
    for fig in ctx.figures:
        assert (out_dir / fig).stat().st_size > 1000
    return result, exp.verdict(result.numbers)
