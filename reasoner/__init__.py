"""reasoner: train language models to reason with RL from verifiable rewards (GRPO, PPO)."""

__version__ = "0.1.0"
