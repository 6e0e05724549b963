"""Optimizers (torch.optim) and learning-rate schedules as pure functions of the optimizer step.

Every schedule is a ``LambdaLR`` whose factor depends only on the global optimizer step, stepped
once per optimizer step. That makes the scheduler state one integer -- trivial to checkpoint as
JSON and exact on resume -- and lets epoch-based schedules (the seed's ``StepLR(7, 0.1)``) and
per-step ones (cosine, one-cycle, warm-up) share one code path.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

import torch
from torch import nn

from cnnlab.train.config import TrainConfig

_NORM_TYPES = (nn.modules.batchnorm._NormBase, nn.GroupNorm, nn.LayerNorm, nn.LocalResponseNorm)


def split_decay(model: nn.Module, no_decay_norm_bias: bool) -> tuple[list[nn.Parameter], list[nn.Parameter]]:
    """(decayed, exempt) trainable parameters. Exempt: biases and norm-layer weights, if asked."""
    decay, exempt = [], []
    for module in model.modules():
        for name, p in module.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_exempt = no_decay_norm_bias and (name.endswith("bias") or isinstance(module, _NORM_TYPES)
                                                or p.ndim <= 1)
            (exempt if is_exempt else decay).append(p)
    return decay, exempt


def build_param_groups(model: nn.Module, cfg: TrainConfig,
                       param_groups: Iterable[dict] | None = None) -> list[dict]:
    """Parameter groups with ``weight_decay`` and an ``l1`` flag set.

    ``param_groups`` (optional) are caller-made groups, e.g. discriminative learning rates for
    transfer learning (``[{"params": backbone, "lr": 1e-4}, {"params": head}]``); each is split
    into decayed/exempt parts the same way.
    """
    if param_groups is None:
        param_groups = [{"params": [p for p in model.parameters() if p.requires_grad]}]
    exempt_ids = {id(p) for p in split_decay(model, cfg.no_decay_norm_bias)[1]}
    groups = []
    for group in param_groups:
        params = [p for p in group["params"] if p.requires_grad]
        extra = {k: v for k, v in group.items() if k != "params"}
        dec = [p for p in params if id(p) not in exempt_ids]
        exe = [p for p in params if id(p) in exempt_ids]
        if dec:
            groups.append({"params": dec, "weight_decay": cfg.weight_decay, "l1": cfg.l1 > 0, **extra})
        if exe:
            groups.append({"params": exe, "weight_decay": 0.0, "l1": False, **extra})
    if not groups:
        from cnnlab.errors import ConfigError

        raise ConfigError("the model has no trainable parameters")
    return groups


def build_optimizer(groups: list[dict], cfg: TrainConfig) -> torch.optim.Optimizer:
    """SGD (plain, momentum, Nesterov), Adagrad, RMSprop, Adam or AdamW from ``cfg``."""
    name = cfg.optimizer
    if name == "sgd":
        return torch.optim.SGD(groups, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov)
    if name == "adagrad":
        return torch.optim.Adagrad(groups, lr=cfg.lr, eps=cfg.eps)
    if name == "rmsprop":
        return torch.optim.RMSprop(groups, lr=cfg.lr, alpha=cfg.alpha, eps=cfg.eps, momentum=cfg.momentum)
    if name == "adam":
        return torch.optim.Adam(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    if name == "adamw":
        return torch.optim.AdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps)
    raise AssertionError(name)  # validated by TrainConfig


def lr_factor(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The multiplier of the peak ``lr`` after ``step`` optimizer steps (0-based)."""
    total = max(1, cfg.epochs * steps_per_epoch)
    warmup = int(round(cfg.warmup_epochs * steps_per_epoch))
    floor = cfg.min_lr / cfg.lr if cfg.lr > 0 else 0.0

    def cos_anneal(start: float, end: float, t: float) -> float:
        return end + (start - end) * 0.5 * (1.0 + math.cos(math.pi * min(max(t, 0.0), 1.0)))

    def factor(step: int) -> float:
        epoch = step // steps_per_epoch
        if cfg.schedule == "constant":
            f = 1.0
        elif cfg.schedule == "step":  # StepLR(step_size, gamma), in epochs
            f = cfg.gamma ** (epoch // cfg.step_size)
        elif cfg.schedule == "multistep":
            f = cfg.gamma ** sum(epoch >= m for m in cfg.milestones)
        elif cfg.schedule == "cosine":  # Loshchilov & Hutter 2017 (SGDR) without restarts
            f = cos_anneal(1.0, floor, (step - warmup) / max(1, total - warmup))
        elif cfg.schedule == "cyclic":  # Huang et al. 2017 eq. 2 (SGDR with M equal cycles): restart every T/M steps
            cycle = total // cfg.cycles  # whole epochs per cycle (validated), so cycles end at epoch ends
            f = cos_anneal(1.0, floor, (step % cycle) / cycle)
        elif cfg.schedule == "onecycle":  # Smith & Topin 2018; the phases of torch's OneCycleLR
            start = 1.0 / cfg.onecycle_div
            end = start / cfg.onecycle_final_div
            peak = float(cfg.onecycle_pct * total) - 1
            if step <= peak:
                f = cos_anneal(start, 1.0, step / peak if peak > 0 else 1.0)
            else:
                f = cos_anneal(1.0, end, (step - peak) / max(1e-9, total - 1 - peak))
        else:  # pragma: no cover - validated
            raise AssertionError(cfg.schedule)
        if step < warmup:  # linear warm-up (Goyal et al. 2017, §2.2)
            f *= (step + 1) / warmup
        return f

    return factor


def build_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig,
                    steps_per_epoch: int) -> torch.optim.lr_scheduler.LambdaLR:
    return torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor(cfg, steps_per_epoch))


def l1_penalty(optimizer: torch.optim.Optimizer) -> torch.Tensor | None:
    """sum |w| over the parameter groups flagged ``l1`` (the decayed weights)."""
    terms = [p.abs().sum() for g in optimizer.param_groups if g.get("l1") for p in g["params"]]
    return torch.stack(terms).sum() if terms else None
