"""Reports leak nothing hidden: small cells are suppressed, and no suppressed count or mean can
be recovered from what the reports of a program publish, together.

Generated programs (cohorts of 1-12 people, a test with two forms and anchor items, a scale
with bands, three waves with attrition and forms set aside) run through the real analysis and
the real renderer (HTML, both languages, no PDF, no Prefect). The audit reads every count the
pages publish (``data-k`` on table cells and in sentences, ``data-cells`` on charts: the
renderer prints counts only through them), checks each against the tables, and then acts as an
attacker who knows how counts add up -- first-wave people = came back + form set aside + did not
come; test takers = form A + form B (= the anchor items' n); pairs = their reliable-change
categories = their bands at either wave; program totals = the cohorts shown -- and solves, for
every hidden count, the smallest and largest value these equations allow (linear programming).
A hidden count whose range is a single value is a leak. Means: every hidden cohort's mean must
appear nowhere, and the program's means beside the cohorts must be pooled from the published
cohorts only (with every other cohort's n and mean shown, a program mean that included a
hidden cohort would give its mean away).
"""

from __future__ import annotations

import html
import re

import numpy as np
import pandas as pd
import pytest
from scipy.optimize import linprog

from pipelines.analysis.tables import pooled_means
from reports.privacy import RCI_CATEGORIES, secondary_suppression
from reports.i18n import number, short_label
from reports.render import report_pages
from tests.report_programs import small_program

POOLED = "ALL"


# --- what the pages publish ------------------------------------------------------------------

def parse_key(text: str) -> tuple:
    return tuple(text.split("|"))


def published_counts(pages: dict[str, str]) -> tuple[dict[tuple, int], dict[tuple, int]]:
    """Every count the pages publish (key -> value, the same on every page) and program totals."""
    counts: dict[tuple, int] = {}
    totals: dict[tuple, int] = {}

    def add(store, key, value, page):
        assert store.setdefault(key, value) == value, f"{key} differs between pages ({page})"

    for name, page in pages.items():
        for key, text in re.findall(r'data-k="([^"]+)"[^>]*>([^<]*)<', page):
            add(counts, parse_key(key), int(re.match(r"\d+", text).group()), name)
        for cells in re.findall(r'data-cells="([^"]*)"', page):
            for item in filter(None, cells.split(";")):
                key, value = item.rsplit("=", 1)
                add(counts, parse_key(key), int(value), name)
        for key, text in re.findall(r'data-total="([^"]+)"[^>]*>([^<]*)<', page):
            add(totals, parse_key(key), int(text), name)
    return counts, totals


def visible_text(page: str) -> str:
    """What a reader (or a screen reader) gets: text, chart titles and descriptions."""
    page = re.sub(r"<(script|style)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


# --- the truth, and what an attacker knows about how counts add up --------------------------

def true_counts(tables: dict, config, instruments) -> tuple[dict[tuple, int], list]:
    """Every count a report could show, from the tables, and the equations linking them."""
    cells, relations = {}, []
    first = config.wave_order()[0]
    part = tables["participation"]
    for r in part.itertuples(index=False):
        key = (r.cohort, r.wave, r.instrument)
        cells[("part", *key)] = int(r.n)
        cells[("aside", *key)] = int(r.n_set_aside)
        if r.wave != first:
            cells[("matched", *key)] = int(r.n_matched_first_wave)
            cells[("absent", *key)] = int(r.n_absent)
            relations.append((("part", r.cohort, first, r.instrument),
                              [("matched", *key), ("aside", *key), ("absent", *key)]))
    rel = tables["reliability"]
    forms = rel[(rel["cohort"] != POOLED) & (rel["scale"] == "percent_correct")]
    for (cohort, wave, inst), grp in forms.groupby(["cohort", "wave", "instrument"]):
        keys = [("form", cohort, wave, inst, f) for f in grp["form"]]
        cells.update({k: int(n) for k, n in zip(keys, grp["n"])})
        relations.append((("part", cohort, wave, inst), keys))
    for r in tables["change"].itertuples(index=False):
        pair = (r.cohort, r.instrument, r.scale, r.from_wave, r.to_wave)
        cells[("pairs", *pair)] = int(r.n_pairs)
        counts = [getattr(r, f"rci_{c}") for c in RCI_CATEGORIES]
        if r.improvement and sum(counts) == r.n_pairs:  # RCI computed for this scale
            keys = [("rci", *pair, c) for c in RCI_CATEGORIES]
            cells.update({k: int(n) for k, n in zip(keys, counts)})
            relations.append((("pairs", *pair), keys))
    bands = tables["band_transitions"]
    bands = bands[bands["cohort"] != POOLED]
    for pair, grp in bands.groupby(["cohort", "instrument", "scale", "from_wave", "to_wave"]):
        sub = next(s for s in instruments[pair[1]].subscales if s.id == pair[2])
        for wave, column in ((pair[3], "band_from"), (pair[4], "band_to")):
            n = grp.groupby(column)["n"].sum()
            keys = [("band", *pair, wave, b.id) for b in sub.bands]
            cells.update({k: int(n.get(b.id, 0)) for k, b in zip(keys, sub.bands)})
            relations.append((("pairs", *pair), keys))
    return cells, relations


def recoverable(cells: dict, relations: list, shown: dict, min_n: int) -> list[tuple]:
    """Counts of 1..min_n-1 people, unpublished, whose value the published counts and the
    equations pin down (its smallest and largest value allowed are equal)."""
    leaks = []
    for group in components(relations):
        keys = sorted({k for total, parts in group for k in (total, *parts)}, key=str)
        targets = [k for k in keys if k not in shown and 0 < cells[k] < min_n]
        if not targets:
            continue
        index = {k: i for i, k in enumerate(keys)}
        a_eq = np.zeros((len(group), len(keys)))
        for row, (total, parts) in enumerate(group):
            a_eq[row, index[total]] = 1
            for p in parts:
                a_eq[row, index[p]] -= 1
        top = max(cells[k] for k in keys) + 1
        bounds = [(shown[k], shown[k]) if k in shown else (0, top) for k in keys]
        for k in targets:
            c = np.zeros(len(keys))
            c[index[k]] = 1
            low, high = (linprog(sign * c, A_eq=a_eq, b_eq=np.zeros(len(group)), bounds=bounds,
                                 method="highs") for sign in (1, -1))
            assert low.status == 0 and high.status == 0, "the equations do not hold"
            if -high.fun - low.fun < 0.5:
                leaks.append((k, cells[k], low.fun))
    return leaks


def components(relations: list) -> list[list]:
    """The relations in groups that share no count (each solved apart: smaller problems)."""
    parent: dict = {}

    def find(k):
        while parent.setdefault(k, k) != k:
            parent[k] = parent[parent[k]]
            k = parent[k]
        return k

    for total, parts in relations:
        for p in parts:
            parent[find(p)] = find(total)
    groups: dict = {}
    for relation in relations:
        groups.setdefault(find(relation[0]), []).append(relation)
    return list(groups.values())


def hidden_means(tables: dict, shown: dict, min_n: int, lang: str) -> set[str]:
    """Means of cohorts at a wave whose people are not published, as a page would print them."""
    means = tables["wave_means"]
    out = set()
    for r in means[means["cohort"] != POOLED].itertuples(index=False):
        if ("part", r.cohort, r.wave, r.instrument) in shown and r.n >= min_n:
            continue
        for digits in (1, 2):
            out.add(number(r.mean, lang, digits))
    change = tables["change"]
    for r in change.itertuples(index=False):
        if ("pairs", r.cohort, r.instrument, r.scale, r.from_wave, r.to_wave) not in shown:
            out |= {number(v, lang, 1) for v in (r.mean_from, r.mean_to, r.mean_diff)}
    return out


def pooled_published(tables: dict, shown: dict, min_n: int) -> pd.DataFrame:
    """The program's means at each wave over the cohorts whose mean is published."""
    means = tables["wave_means"]
    cohorts = means[means["cohort"] != POOLED]
    published = cohorts[[(("part", c, w, i) in shown and n >= min_n) for c, w, i, n in zip(
        cohorts["cohort"], cohorts["wave"], cohorts["instrument"], cohorts["n"])]]
    sums = published.assign(total=published["n"] * published["mean"]).groupby(
        ["instrument", "scale", "wave"])[["total", "n"]].sum()
    return sums.assign(mean=sums["total"] / sums["n"])


def published_means(tables: dict, shown: dict, min_n: int, lang: str) -> set[str]:
    """Means the pages may print: published cohorts' and pairs', the program's, model figures."""
    means = tables["wave_means"]
    cohorts = means[means["cohort"] != POOLED]
    published = cohorts[[(("part", c, w, i) in shown and n >= min_n) for c, w, i, n in zip(
        cohorts["cohort"], cohorts["wave"], cohorts["instrument"], cohorts["n"])]]
    pooled = pooled_means(published, ["instrument", "scale", "wave"])  # with their CIs
    out = {number(v, lang, 1) for c in ("mean", "ci_low", "ci_high") for v in pooled[c]}
    for r in means.itertuples(index=False):
        if r.cohort == POOLED or (("part", r.cohort, r.wave, r.instrument) in shown
                                  and r.n >= min_n):
            out |= {number(v, lang, d) for v in (r.mean, r.ci_low, r.ci_high) for d in (1, 2)}
    for r in tables["change"].itertuples(index=False):
        if ("pairs", r.cohort, r.instrument, r.scale, r.from_wave, r.to_wave) in shown:
            out |= {number(v, lang, 1) for v in (r.mean_from, r.mean_to, r.mean_diff,
                                                r.ci_low, r.ci_high)}
    for column in ("estimate", "ci_low", "ci_high"):
        out |= {number(v, lang, d) for v in tables["models"][column].dropna() for d in (1, 2)}
    return out


def program_means_in_page(page: str) -> dict[tuple[str, str], float]:
    """(panel title, wave) -> the program's mean, read from the means charts' descriptions."""
    found = {}
    for title, desc in re.findall(r"<svg[^>]*><title>([^<]*)</title><desc>([^<]*)</desc>", page):
        for wave, value in re.findall(r"([^;:,]+), Program[^:]*: (-?[\d.,]+)", html.unescape(desc)):
            found[(html.unescape(title), wave.strip())] = float(value.replace(",", ""))
    return found


def audit(tables: dict, config, instruments) -> list[str]:
    """Every way the program's pages give away something hidden (empty: nothing)."""
    pages = report_pages(tables, config, instruments)
    min_n = config.min_cell_size
    shown, totals = published_counts(pages)
    cells, relations = true_counts(tables, config, instruments)
    problems = []
    for key, value in shown.items():
        truth = cells.get(key) if key[0] != "rel" else None
        if truth is not None and truth != value:
            problems.append(f"{key}: page shows {value}, the tables say {truth}")
        if 0 < value < min_n:
            problems.append(f"{key}: a count of {value} (< {min_n}) is published")
    for key, value, found in recoverable(cells, relations, shown, min_n):
        problems.append(f"{key}: hidden count {value} recoverable (= {found:g})")
    part = tables["participation"]
    for (_, _, wave, inst), total in totals.items():
        rows = part[(part["wave"] == wave) & (part["instrument"] == inst)]
        expected = sum(shown.get(("part", c, wave, inst), 0) for c in rows["cohort"])
        if total != expected:
            problems.append(f"program total {wave}/{inst} = {total}, not the sum of the "
                            f"cohorts shown ({expected})")
    # Means: nothing of a hidden group anywhere; the program's means from published cohorts.
    for lang in ("es", "en"):
        secrets = hidden_means(tables, shown, min_n, lang) - published_means(
            tables, shown, min_n, lang)
        for name, page in pages.items():
            if not name.endswith(f"_{lang}.html"):
                continue
            text = visible_text(page)
            for secret in secrets:
                if len(secret.strip("-0,.")) >= 2 and re.search(
                        rf"(?<![\d.,\-−]){re.escape(secret)}(?![\d])", text):
                    problems.append(f"{name}: hidden mean {secret} printed")
    printed = program_means_in_page(pages["program_en.html"])
    labels = {w.id: w.label.en for w in config.waves}
    for (inst, scale, wave), row in pooled_published(tables, shown, min_n).iterrows():
        value = printed.get((short_label(instruments, inst, scale, "en"), labels[wave]))
        if value is not None and abs(value - row["mean"]) > 0.051:
            problems.append(f"program mean {inst}/{scale}/{wave} printed {value}, not pooled "
                            f"from the published cohorts ({row['mean']:.2f})")
    # A cohort under the minimum: a page without a single figure.
    for cohort in config.cohorts:
        first = [v for k, v in cells.items() if k[0] == "part" and k[1] == cohort.id
                 and k[2] == config.wave_order()[0]]
        if max(first, default=0) < min_n:
            for lang in ("es", "en"):
                page = pages[f"cohort_{cohort.id}_{lang}.html"]
                body = page.split("<h2>", 1)[-1].split("<footer>")[0]
                if "data-k" in page or "<svg" in page or re.search(
                        r"\d", visible_text(body).replace(str(min_n), "")):
                    problems.append(f"{cohort.id}: its one-page report shows a figure")
    return problems


# --- the tests ----------------------------------------------------------------------------------

def test_secondary_suppression_hides_a_second_cell_and_prefers_the_cheapest():
    # Virú's forms: A = 3 hidden, B = 5 shown, all 8 shown -> B hidden too.
    cells = {"all": 8, "A": 3, "B": 5}
    assert secondary_suppression(cells, [("all", ["A", "B"])], 5) == {"A", "B"}
    # A zero is hidden rather than a count a reader needs.
    cells = {"first": 10, "back": 8, "aside": 2, "absent": 0}
    assert secondary_suppression(cells, [("first", ["back", "aside", "absent"])], 5) == {
        "aside", "absent"}
    # Chains: a cell hidden as a complement in one relation is protected in the next.
    cells = {"t1": 10, "a": 3, "b": 7, "t2": 12, "c": 5}
    hidden = secondary_suppression(cells, [("t1", ["a", "b"]), ("t2", ["b", "c"])], 5)
    assert hidden == {"a", "b", "c"}
    assert secondary_suppression({"t": 9, "x": 9, "y": 0}, [("t", ["x", "y"])], 5) == set()


SIZES = [[8, 4, 22], [1, 12, 6], [5, 5, 5, 2], [3, 9], [12, 11, 7, 1, 4], [2, 6]]


@pytest.mark.parametrize("seed", range(len(SIZES)))
def test_generated_programs_leak_nothing(seed):
    sizes = SIZES[seed] if seed < len(SIZES) else None
    tables, config, instruments = small_program(seed, sizes)
    assert audit(tables, config, instruments) == []


def test_the_audit_finds_a_leak_when_suppression_is_switched_off(monkeypatch):
    """The audit is not blind: with primary suppression only (no complements), the forms and
    retention of a generated program give hidden counts away."""
    import reports.privacy as privacy

    original = privacy.secondary_suppression
    monkeypatch.setattr(privacy, "secondary_suppression",
                        lambda cells, relations, min_n, hidden=None: original(cells, [], min_n))
    tables, config, instruments = small_program(0, SIZES[0])
    problems = audit(tables, config, instruments)
    assert any("recoverable" in p for p in problems), problems


def test_the_audit_finds_a_program_mean_that_counts_a_hidden_cohort(monkeypatch):
    """The Laredo case: a 4-person cohort beside others whose means and sizes are shown; a
    program mean over every cohort would give its mean away."""
    import reports.view as render

    monkeypatch.setattr(render.TableIndex, "_program_means", lambda self, means: {
        (r["instrument"], r["scale"], r["wave"]): r for r in render.records(
            means[means["cohort"] == POOLED])})
    tables, config, instruments = small_program(0, SIZES[0])
    assert any("not pooled from the published cohorts" in p
               for p in audit(tables, config, instruments))


def test_the_demo_programs_viru_and_laredo_leak_nothing(demo_run):
    """Today's cases: Virú (forms A = 3 and B = 5, anchors n = 8) and Laredo (4 people beside
    cohorts whose means and sizes are shown)."""
    from pipelines import stages

    ctx = stages.load_context(demo_run["root"])
    tables = demo_run["tables"]
    assert audit(tables, ctx.config, ctx.instruments) == []
    pages = report_pages(tables, ctx.config, ctx.instruments)
    shown, _ = published_counts(pages)
    assert not any(k[0] == "form" and k[1] == "viru-2026-1" and k[2] == "pre" for k in shown)
    assert not any(len(k) > 1 and k[1] == "laredo-2026-1" for k in shown)
