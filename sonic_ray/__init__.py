"""sonic-ray: SONIC-style universal humanoid motion trackers trained on Ray RLlib."""

__version__ = "0.1.0"
