"""core.registry: the one name -> entry mapping behind MEASURES, ATTACKS, MODELS and GROUP_DATASETS."""

from __future__ import annotations

import re

import pytest

from core.attacks import ATTACKS
from core.data import GROUP_DATASETS
from core.measures import MEASURES
from core.models import MODELS
from core.registry import DUPLICATE, UNKNOWN, Registry


def test_add_lookup_and_the_messages():
    reg: Registry[int] = Registry("widget")
    assert reg.add("a", 1) == 1 and reg.add("b", 2) == 2
    assert reg.lookup("b") == 2 and list(reg) == ["a", "b"]  # registration order is kept
    with pytest.raises(ValueError, match=re.escape(DUPLICATE.format(kind="widget", name="a"))):
        reg.add("a", 3)
    assert reg["a"] == 1  # a refused duplicate changes nothing
    with pytest.raises(ValueError, match=re.escape(UNKNOWN.format(kind="widget", name="c", known="a, b"))):
        reg.lookup("c")


@pytest.mark.parametrize("registry,kind", [(MEASURES, "measure"), (ATTACKS, "attack"), (MODELS, "model"),
                                           (GROUP_DATASETS, "group dataset")])
def test_every_registry_of_the_project_is_one(registry, kind):
    assert isinstance(registry, Registry) and registry.kind == kind and len(registry) >= 3
    with pytest.raises(ValueError, match=f"unknown {kind} 'nope'; expected one of: "):
        registry.lookup("nope")
