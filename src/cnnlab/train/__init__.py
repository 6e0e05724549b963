"""Training engine: TrainConfig, fit, evaluation, checkpoints with exact resume, DDP."""
