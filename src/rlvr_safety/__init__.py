"""rlvr-safety: RL from verifiable rewards with measured, forecast and certified safety."""

__version__ = "0.1.0"
