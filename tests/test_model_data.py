"""Issue 14, item 4: model-specific facts are data. No code outside contracts/ compares a contract,
model or tensor name with a literal; a model is a contract plus a build recipe."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from contracts import REGISTRY

ROOT = Path(__file__).resolve().parents[1]
CODE = ("converters", "gate", "golden", "reference", "verify", "benchmarks")


def _names() -> set[str]:
    names = set(REGISTRY)
    for contract in REGISTRY.values():
        names |= {t.name for t in (*contract.inputs, *contract.outputs)}
    return names


def name_comparisons(source: str, names: set[str]) -> list[int]:
    """Lines where ``==``, ``!=``, ``in`` or ``not in`` has a model or tensor name literal on a side."""
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Compare):
            continue
        sides = [node.left, *node.comparators]
        literals = [s.value for s in sides if isinstance(s, ast.Constant) and isinstance(s.value, str)]
        if any(value in names for value in literals):
            lines.append(node.lineno)
    return lines


def test_no_code_compares_a_model_name_with_a_literal():
    names = _names()
    found = {
        f"{path.relative_to(ROOT)}:{line}"
        for package in CODE
        for path in (ROOT / package).rglob("*.py")
        for line in name_comparisons(path.read_text(), names)
    }
    assert not found, sorted(found)


@pytest.mark.parametrize(
    "source",
    ['if contract.name == "encoder_v1": pass', 'x = "personality_v1" in models', 'y = spec.name != "logits"'],
)
def test_the_scan_finds_a_literal_comparison(source):
    assert name_comparisons(source, _names()) == [1]


def test_every_contract_has_a_recipe_and_models_build_after_what_they_consume():
    from converters.recipes import RECIPES, build_order

    assert set(RECIPES) == set(REGISTRY)
    for name, contract in REGISTRY.items():
        order = build_order((name,))
        assert order[-1] == name
        if contract.consumes:
            assert order.index(contract.consumes) < order.index(name)
    with pytest.raises(ValueError, match="no recipe for 'nope'"):
        build_order(("nope",))
