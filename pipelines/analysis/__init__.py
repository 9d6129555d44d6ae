"""Pure statistics over pandas/numpy: no Prefect, no Great Expectations, no files.

Every function here works in a notebook on plain DataFrames.
"""
