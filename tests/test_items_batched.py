"""The batched item analysis (every cohort x wave at once) against the per-group path.

``item_tables`` analyses every group in one pass; the per-group functions of
``pipelines.analysis.items`` stay the reference (golden tests against R psych).
Here the per-group path is run as ``item_tables`` ran it before, group by group,
and the two tables must be the same: rows, order, columns, dtypes and flags
(floats to 1e-9).
"""


import numpy as np
import pandas as pd
import pytest

from benchmarks.national_program import write_national
from instruments import load_builtin
from pipelines import stages
from pipelines.analysis.items import (
    chosen_options, knowledge_items_by_group, likert_item_statistics_by_group,
)
from pipelines.analysis.scoring import correct_matrix, reverse_keyed
from pipelines.analysis.tables import (
    ITEM_COLUMNS, OPTION_COLUMNS, item_tables, with_keys,
)
from tests.oracles import _chose, distractors, knowledge_items, with_pooled
from tests.oracles import likert_item_statistics_by_hand as likert_item_statistics
from pipelines.demo import write_demo



@pytest.fixture(scope="module", autouse=True)
def pseudonym_key():
    """The national program reads its key from the environment (set for this module only)."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("CAPACITAR_PSEUDONYM_KEY", "test-key-" + "x" * 24)
        yield


# ---- the per-group path, as item_tables ran it group by group ------------------

def looped_correct_matrix(responses: pd.DataFrame, inst) -> pd.DataFrame:
    """correct_matrix with one .loc assignment per form and item (the former code)."""
    correct = pd.DataFrame(np.nan, index=responses.index, columns=inst.item_ids)
    for form in inst.forms:
        rows = responses["form"].astype(str).eq(form.id)
        for item_id in form.items:
            key = form.key[item_id]
            wanted = ";".join(sorted(str(k) for k in key)) if isinstance(key, list) else str(key)
            answers = responses.loc[rows, item_id]
            correct.loc[rows, item_id] = answers.eq(wanted).fillna(False).astype(float)
    return correct


def looped_likert_frequencies(keys: dict, raw: pd.DataFrame, inst) -> list[dict]:
    rows = []
    for item in raw.columns:
        answered = raw[item].dropna().astype(float)
        for option in inst.options_for(item):
            chose = int((answered == float(option.code)).sum())
            rows.append({**keys, "item": item, "option": str(option.code), "is_key": pd.NA,
                         "n_answered": len(answered), "n_choosing": chose,
                         "share": chose / len(answered) if len(answered) else np.nan,
                         "point_biserial": np.nan})
    return rows


def looped_item_tables(valid, instruments, scope="all"):
    items, options = [], []
    for inst_id, frame in valid.items():
        inst = instruments[inst_id]
        if frame.empty:
            continue
        if inst.kind == "scale":
            keyed = with_keys(frame, reverse_keyed(frame, inst))
            raw = with_keys(frame, frame[inst.item_ids])
            for (cohort, wave), grp in with_pooled(keyed, scope):
                keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
                for sub in inst.subscales:
                    items.append(likert_item_statistics(grp[sub.items]).assign(**keys, scale=sub.id,
                                                                     form=""))
            for (cohort, wave), grp in with_pooled(raw, scope):
                keys = dict(cohort=cohort, wave=wave, instrument=inst_id, form="")
                options.append(pd.DataFrame(looped_likert_frequencies(
                    keys, grp[inst.item_ids], inst)))
            continue
        for (cohort, wave), grp in with_pooled(frame, scope):
            keys = dict(cohort=cohort, wave=wave, instrument=inst_id)
            correct_all = looped_correct_matrix(grp, inst)
            for form in inst.forms:
                rows = grp["form"].astype(str).eq(form.id).to_numpy()
                if not rows.any():
                    continue
                correct, answers = correct_all.loc[rows, form.items], grp.loc[rows, form.items]
                codes = {i: [str(o.code) for o in inst.options_for(i)] for i in form.items}
                key = {i: [str(c) for c in (k if isinstance(k, list) else [k])]
                       for i, k in form.key.items()}
                table = distractors(answers, correct, codes, key)
                items.append(knowledge_items(correct, table).assign(
                    **keys, scale="percent_correct", form=form.id))
                options.append(table.assign(**keys, form=form.id, n_answered=len(answers)))
    items_table = pd.concat(items, ignore_index=True) if items else pd.DataFrame()
    options_table = pd.concat(options, ignore_index=True) if options else pd.DataFrame()
    options_table = options_table.reindex(columns=OPTION_COLUMNS)
    options_table["is_key"] = options_table["is_key"].astype("boolean")
    return items_table.reindex(columns=ITEM_COLUMNS), options_table


def assert_same_tables(valid, instruments, scope):
    items, options = item_tables(valid, instruments, scope=scope)
    ref_items, ref_options = looped_item_tables(valid, instruments, scope=scope)
    assert len(items) and len(options)
    pd.testing.assert_frame_equal(items, ref_items, check_exact=False, rtol=1e-9, atol=1e-9)
    pd.testing.assert_frame_equal(options, ref_options, check_exact=False, rtol=1e-9,
                                  atol=1e-9)
    return items, options


# ---- programs ------------------------------------------------------------------

def _valid(root):
    ctx = stages.load_context(root)
    return stages.validate(ctx, stages.ingest(ctx)).valid, ctx.instruments


@pytest.fixture(scope="module")
def demo_valid(tmp_path_factory):
    return _valid(write_demo(tmp_path_factory.mktemp("demo-items")))


@pytest.fixture(scope="module")
def national_valid(tmp_path_factory):
    root = tmp_path_factory.mktemp("national-items")
    write_national(root, n_cohorts=20)
    return _valid(root)


def test_demo_program_tables_equal_the_per_group_path(demo_valid):
    items, _ = assert_same_tables(*demo_valid, "all")  # cohort rows and pooled rows
    assert {"ALL"} < set(items["cohort"])


@pytest.mark.parametrize("scope", ["cohorts", "pooled"])
def test_national_sample_tables_equal_the_per_group_path(national_valid, scope):
    items, options = assert_same_tables(*national_valid, scope)
    # The comparison covers every kind of row and flag the program produces.
    assert {"percent_correct", "burnout"} <= set(items["scale"])
    assert items["flags"].str.len().gt(0).any()
    assert options["point_biserial"].notna().any() and options["is_key"].isna().any()


def test_correct_matrix_equals_the_per_cell_version(demo_valid, national_valid):
    instruments = load_builtin()
    for valid in (demo_valid[0], national_valid[0]):
        frame = valid["tic_knowledge"]
        pd.testing.assert_frame_equal(correct_matrix(frame, instruments["tic_knowledge"]),
                                      looped_correct_matrix(frame, instruments["tic_knowledge"]))


# ---- edge cases the programs rarely reach ----------------------------------------

def test_likert_groups_with_few_rows_constant_items_and_missing_answers():
    rng = np.random.default_rng(4)
    x = rng.integers(1, 6, size=(60, 4)).astype(float)
    x[rng.random(x.shape) < 0.1] = np.nan
    group = np.repeat(np.arange(6), [25, 15, 10, 5, 2, 3])
    x[25:40, 1] = 3.0  # constant item in group 1
    x[40:50, 2] = 6 - x[40:50, 3]  # items 2 and 3 sum to a constant in group 2
    x[50:55, 0] = np.nan  # group 3: no complete row
    frame = pd.DataFrame(x, columns=list("abcd"))
    batched = likert_item_statistics_by_group(frame, group, 6)
    looped = pd.concat([likert_item_statistics(frame[group == g]).assign(group=g) for g in range(6)],
                       ignore_index=True)
    pd.testing.assert_frame_equal(batched, looped[batched.columns], check_exact=False,
                                  rtol=1e-9, atol=1e-9)
    assert "constant_item" in set(batched["flags"])


def test_knowledge_groups_with_multi_select_ties_and_a_miskeyed_item():
    rng = np.random.default_rng(11)
    n = 90
    group = np.sort(rng.integers(0, 5, size=n))
    group[group == 3] = 4  # group numbers need not be contiguous
    group[-2:] = 7  # two people: NaN correlations, computed by the reference
    ability = rng.normal(size=n)
    answers = pd.DataFrame({
        "q1": np.where(ability + rng.normal(size=n) > 0, "a", rng.choice(["b", "c"], n)),
        "q2": np.where(ability + rng.normal(size=n) > -0.5, "a;c",
                       rng.choice(["a", "c", "b;c", None], n)),
        "q3": np.where(ability + rng.normal(size=n) > 0, "b", "a"),  # keyed "a": miskeyed
        "q4": np.where(rng.random(n) < 0.95, "v", "f"),
        "q5": rng.choice(["a", "b", "c", "d"], n),
    }, dtype="str")
    answers.loc[group == 0, "q4"] = "v"  # everyone right: constant item
    key = {"q1": ["a"], "q2": ["a", "c"], "q3": ["a"], "q4": ["v"], "q5": ["d"]}
    options = {"q1": ["a", "b", "c"], "q2": ["a", "b", "c"], "q3": ["a", "b"],
               "q4": ["v", "f"], "q5": ["a", "b", "c", "d"]}
    correct = pd.DataFrame({i: answers[i].eq(";".join(sorted(k))).astype(float)
                            for i, k in key.items()})
    items, choices = knowledge_items_by_group(answers, correct.to_numpy(), group, options, key)
    ref_items, ref_choices = [], []
    for g in np.unique(group):
        rows = group == g
        table = distractors(answers[rows], correct[rows], options, key)
        ref_items.append(knowledge_items(correct[rows], table).assign(group=g))
        ref_choices.append(table.assign(group=g, n_answered=int(rows.sum())))
    ref_items = pd.concat(ref_items, ignore_index=True)
    ref_choices = pd.concat(ref_choices, ignore_index=True)
    pd.testing.assert_frame_equal(items, ref_items[items.columns], check_exact=False,
                                  rtol=1e-9, atol=1e-9)
    pd.testing.assert_frame_equal(choices, ref_choices[choices.columns], check_exact=False,
                                  rtol=1e-9, atol=1e-9)
    assert items["flags"].str.contains("possible_wrong_key").any()


def test_chosen_options_splits_multi_select_answers_as_chose():
    answers = pd.Series(["a", "a;c", None, "b;c", "", "c"], dtype="str")
    batched = chosen_options(answers, ["a", "b", "c", "d"])
    for o, option in enumerate(["a", "b", "c", "d"]):
        np.testing.assert_array_equal(batched[:, o], _chose(answers, option))


def test_correct_matrix_with_multi_select_keys_missing_answers_and_other_dtypes():
    kt = load_builtin()["tic_knowledge"]
    form_a = kt.forms[0]
    multi = form_a.items[-1]
    form_a = form_a.model_copy(update={"key": {**form_a.key, multi: ["c", "a"]}})
    inst = kt.model_copy(update={"forms": [form_a, *kt.forms[1:]]})
    rng = np.random.default_rng(5)
    n = 200
    frame = pd.DataFrame({i: rng.choice(["a", "b", "c", "d", "v", "f", "a;c", None], n)
                          for i in inst.item_ids}, dtype="str")
    frame["form"] = rng.choice(["A", "B", None, "Z"], n)
    frame[inst.item_ids[1]] = frame[inst.item_ids[1]].astype("string")  # pd.NA missing
    frame[inst.item_ids[2]] = frame[inst.item_ids[2]].astype(object)
    frame.index = rng.permutation(n) + 100
    new, old = correct_matrix(frame, inst), looped_correct_matrix(frame, inst)
    pd.testing.assert_frame_equal(new, old)
    assert new[multi].eq(1).any() and new.isna().any().any()
