"""Stage tasks hand their arguments over without Prefect walking them (pipelines/flows.py)."""

from prefect import flow

from pipelines.flows import StageTask, stage_task


def nested(depth: int) -> list:
    """A list inside a list ... ``depth`` deep: walking it recursively exceeds Python's stack."""
    value: list = []
    for _ in range(depth):
        value = [value]
    return value


@stage_task
def depth_of(value: list) -> int:
    depth = 0
    while value:
        value, depth = value[0], depth + 1
    return depth


@flow
def called(depth: int) -> tuple[int, int]:
    value = nested(depth)
    return depth_of(value), depth_of(value=value)


def test_a_stage_task_is_given_its_arguments_unwalked(prefect_harness):
    # Prefect's parameter walk recurses into every list: 5,000 levels raise RecursionError
    # unless the stage's arguments are quoted (a plain @task fails here). Submitted stages
    # (Dask) are not quoted: tests/test_runs.py::test_a_dask_cluster_gives_the_same_tables.
    assert isinstance(depth_of, StageTask)
    assert called(5000) == (5000, 5000)
