"""IPL: turn a seller's photos into a grounded, ready-to-edit second-hand listing."""

__version__ = "0.1.0"
