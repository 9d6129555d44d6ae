"""Observer-rated competencies (issue 24): the rating instrument kind, raters at ingest, the
demo's planted raters, the interrater/raters tables and the reports' competence section."""

from pathlib import Path

import pytest

from instruments import load_builtin, load_instrument
from instruments.rating import domains
from pipelines.errors import ConfigError

RATING = """
id: mini_rating
version: "1"
kind: rating
title: {en: Mini rating, es: Mini}
citation: test
licence: test
harmful_to: 1
helpful_from: 3
response_options:
  - {code: 1, en: Harmful, es: Dañino, anchor: {en: does harm, es: daña}}
  - {code: 2, en: Basic, es: Básico}
  - {code: 3, en: Helpful, es: Útil}
  - {code: 4, en: Advanced, es: Avanzado}
items: [{id: a1}, {id: a2}, {id: b1}]
subscales:
  - {id: da, label: {en: A}, items: [a1, a2], scoring: mean}
  - {id: db, label: {en: B}, items: [b1], scoring: mean}
  - {id: total, label: {en: Total}, items: [a1, a2, b1], scoring: mean}
"""


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mini_rating.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_demo_roleplay_tool_is_a_rating_instrument():
    tool = load_builtin()["tic_roleplay"]
    assert tool.kind == "rating" and 8 <= len(tool.items) <= 10
    assert [o.code for o in tool.response_options] == [1, 2, 3, 4]
    assert all(o.anchor and o.anchor.es and o.anchor.en for o in tool.response_options)
    assert set(domains(tool).values()) == {"engagement", "safety", "collaboration"}
    assert all(i.text.es and i.text.en for i in tool.items)
    assert "CC BY" in tool.licence


def test_good_rating_yaml_loads(tmp_path):
    inst = load_instrument(write(tmp_path, RATING))
    assert domains(inst) == {"a1": "da", "a2": "da", "b1": "db"}
    assert inst.response_options[0].anchor.en == "does harm"


@pytest.mark.parametrize("patch, expected", [
    (("items: [a1, a2], scoring", "items: [a1], scoring"), "in none: ['a2']"),
    (("items: [b1], scoring", "items: [b1, a1], scoring"), "in two: ['a1']"),
    (("id: total, label: {en: Total}, items: [a1, a2, b1]",
      "id: total, label: {en: Total}, items: [a1, a2]"), "subscale 'total' listing every item"),
    (("{code: 2, en: Basic", "{code: 5, en: Basic"), "must rise"),
    (("{code: 2, en: Basic", "{code: b, en: Basic"), "whole-number codes"),
    (("helpful_from: 3", "helpful_from: 7"), "must be level codes"),
    (("helpful_from: 3\n", ""), "needs harmful_to and helpful_from"),
    (("items: [b1], scoring: mean", "items: [b1], scoring: sum"), "scoring: mean"),
])
def test_broken_rating_yaml_is_one_line_naming_file_and_field(tmp_path, patch, expected):
    assert patch[0] in RATING
    path = write(tmp_path, RATING.replace(*patch))
    with pytest.raises(ConfigError) as err:
        load_instrument(path)
    message = str(err.value)
    assert str(path) in message and expected in message and "\n" not in message
