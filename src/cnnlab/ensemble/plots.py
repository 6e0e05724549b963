"""The figures of ``cnnlab cv / bag / boost / ensemble / biasvar`` (matplotlib, written atomically)."""

from __future__ import annotations

from pathlib import Path


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path) -> Path:
    from cnnlab._io import save_figure

    save_figure(fig, path, dpi=110)
    _plt().close(fig)
    return Path(path)


def plot_ensemble(result, path: str | Path) -> Path:
    """Left: each member's accuracy, the mean member and the ensemble. Right: the ensemble of the first
    ``k`` members against ``k``."""
    plt = _plt()
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    acc = [100 * m.top1 for m in result.members]
    x = range(1, len(acc) + 1)
    ax.bar(x, acc, color="tab:blue", alpha=0.7, label="members")
    ax.axhline(100 * result.mean_member, color="tab:blue", ls="--",
               label=f"mean member {100 * result.mean_member:.2f}%")
    ax.axhline(100 * result.top1, color="tab:red", label=f"ensemble ({result.vote}) {100 * result.top1:.2f}%")
    lo = min(acc + [100 * result.top1])
    hi = max(acc + [100 * result.top1])
    pad = max(0.5, 0.3 * (hi - lo))
    ax.set(xlabel="member", ylabel="test top-1 (%)", ylim=(lo - pad, hi + pad),
           title=f"gain {100 * result.gain:+.2f} points over the mean member")
    ax.set_xticks(list(x))
    ax.legend(loc="lower right", fontsize=8)
    ax2.plot(list(x), [100 * a for a in result.by_size], marker="o", color="tab:red", label="ensemble of members 1..k")
    ax2.plot(list(x), acc, marker=".", ls=":", color="tab:blue", label="member k alone")
    ax2.set(xlabel="k (members)", ylabel="test top-1 (%)", title="ensemble of the first k members")
    ax2.set_xticks(list(x))
    for a in (ax, ax2):
        a.grid(alpha=0.3)
    ax2.legend(fontsize=8)
    fig.suptitle(f"{result.kind} of {len(acc)} members on {_short_data(result.data)} ({result.n:,} images)")
    fig.tight_layout()
    return _save(fig, path)


def _short_data(data: str, width: int = 60) -> str:
    """A data name that fits a title: a long folder path keeps its scheme and its end."""
    if len(data) <= width:
        return data
    scheme, sep, rest = data.partition(":") if ":" in data[:20] else ("", "", data)
    return f"{scheme}{sep}...{rest[-(width - len(scheme) - 4):]}"


def plot_boost(result, path: str | Path) -> Path:
    """Per round: the ensemble's test and training accuracy and the learner's; alpha and weighted error."""
    plt = _plt()
    r = result.rounds
    x = [row.round for row in r]
    fig, (ax, ax2) = plt.subplots(1, 2, figsize=(11, 4))
    ax.plot(x, [100 * row.ensemble_top1 for row in r], marker="o", color="tab:red", label="ensemble (test)")
    ax.plot(x, [100 * row.ensemble_train_top1 for row in r], marker="o", ls="--", color="tab:orange",
            label="ensemble (train)")
    ax.plot(x, [100 * row.member_top1 for row in r], marker=".", ls=":", color="tab:blue", label="learner m (test)")
    ax.set(xlabel="round m", ylabel="top-1 (%)", title=f"SAMME ({result.mode}): {len(r)} rounds")
    ax.legend(fontsize=8)
    ax2.plot(x, [row.alpha for row in r], marker="o", color="tab:green", label="alpha")
    ax2.set(xlabel="round m", ylabel="alpha")
    ax3 = ax2.twinx()
    ax3.plot(x, [row.weighted_error for row in r], marker="s", color="tab:purple", label="weighted error")
    ax3.set_ylabel("weighted error")
    ax2.legend(loc="upper left", fontsize=8)
    ax3.legend(loc="upper right", fontsize=8)
    for a in (ax, ax2):
        a.grid(alpha=0.3)
        a.set_xticks(x)
    fig.tight_layout()
    return _save(fig, path)


def plot_cv(result, path: str | Path) -> Path:
    """Per-fold top-1 and loss with the mean and the +/- one standard deviation band."""
    plt = _plt()
    names = [m for m in ("top1", "loss") if m in result.mean]
    fig, axes = plt.subplots(1, len(names), figsize=(5.5 * len(names), 4), squeeze=False)
    x = [f.fold + 1 for f in result.folds]
    for ax, m in zip(axes[0], names):
        scale = 100 if m != "loss" else 1
        vals = [scale * f.metrics[m] for f in result.folds]
        mean, std = scale * result.mean[m], scale * result.std[m]
        ax.bar(x, vals, color="tab:blue", alpha=0.7)
        ax.axhline(mean, color="tab:red", label=f"mean {mean:.3f} +/- {std:.3f}")
        ax.axhspan(mean - std, mean + std, color="tab:red", alpha=0.15)
        lo, hi = min(vals + [mean - std]), max(vals + [mean + std])
        pad = max(1e-3, 0.5 * (hi - lo))
        ax.set(xlabel="fold", ylabel=f"validation {m}{' (%)' if scale == 100 else ''}", ylim=(lo - pad, hi + pad),
               title=f"{result.k}-fold stratified CV: {m}")
        ax.set_xticks(x)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_biasvar(result, path: str | Path) -> Path:
    """Test error, bias (= bias^2 for the 0-1 loss), unsigned and net variance against the swept value."""
    plt = _plt()
    pts = result.points
    x = list(range(len(pts)))
    labels = [str(p.value) if p.value is not None else "-" for p in pts]
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for attr, style, name in (("loss", "o-", "test error (expected 0-1 loss)"), ("bias", "s-", "bias (= bias^2)"),
                              ("variance", "^--", "variance (unsigned)"), ("net_variance", "v-", "net variance")):
        ax.plot(x, [100 * getattr(p.decomposition, attr) for p in pts], style, label=name)
    ax.set_xticks(x, labels, rotation=20 if max(len(s) for s in labels) > 6 else 0)
    ax.set(xlabel=result.key or "", ylabel="% of test images",
           title=f"Domingos 0-1 bias/variance ({pts[0].decomposition.models} bootstrap models each)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def plot_bootstrap(result, path: str | Path) -> Path:
    """Per-class accuracy with its bootstrap interval; the overall interval as a band."""
    plt = _plt()
    k = len(result.per_class)
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * k + 2), 4))
    pts = [100 * c.point for c in result.per_class]
    err = [[100 * (c.point - c.low) for c in result.per_class], [100 * (c.high - c.point) for c in result.per_class]]
    ax.errorbar(range(k), pts, yerr=err, fmt="o", capsize=3, label="per class")
    t = result.top1
    ax.axhspan(100 * t.low, 100 * t.high, color="tab:red", alpha=0.2,
               label=f"top-1 {100 * t.point:.2f}% [{100 * t.low:.2f}, {100 * t.high:.2f}]")
    ax.set_xticks(range(k), result.classes, rotation=45, ha="right", fontsize=8)
    ax.set(ylabel="accuracy (%)", title=f"{100 * result.confidence:g}% percentile bootstrap intervals "
                                         f"({result.resamples} resamples of {result.n:,} images)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)
