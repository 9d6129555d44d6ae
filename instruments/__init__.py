"""Instrument definitions (YAML) and the model that validates them.

Built-in definitions live in ``instruments/builtin``; a program adds its own by
dropping YAML files into its ``instruments/`` folder.
"""

from instruments.loader import load_builtin, load_instrument, load_instruments
from instruments.model import Instrument, Subscale

__all__ = ["Instrument", "Subscale", "load_builtin", "load_instrument", "load_instruments"]
