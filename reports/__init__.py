"""Cohort and program reports rendered from result tables (no statistics here)."""
