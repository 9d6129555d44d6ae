"""Data contracts: what a valid response row is, and the split into valid and quarantine."""

from data_contracts.rules import RULES, ContractResult, apply_contracts, localise

__all__ = ["RULES", "ContractResult", "apply_contracts", "localise"]
