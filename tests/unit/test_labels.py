"""Display labels are sealed at rest (issue 19 point 1; services/store/labels.py)."""

from __future__ import annotations

import pytest

from models.errors import ValidationError
from services.store.labels import LabelError, LabelSealer

ROW = ("clinic-a", "a" * 64)


def test_a_sealed_label_opens_only_on_its_own_row_with_its_key() -> None:
    sealer = LabelSealer(b"k" * 32)
    sealed = sealer.seal(*ROW, "  Dr. Lee ")
    assert "Lee" not in sealed and sealed.startswith("v1:")
    assert sealer.open(*ROW, sealed) == "Dr. Lee"
    assert sealer.seal(*ROW, "Dr. Lee") != sealer.seal(*ROW, "Dr. Lee")  # fresh nonce
    with pytest.raises(LabelError, match="label"):
        sealer.open("clinic-b", ROW[1], sealed)  # moved to another clinic's row
    with pytest.raises(LabelError, match="RAPPORT_LABEL_KEY"):
        LabelSealer(b"o" * 32).open(*ROW, sealed)


@pytest.mark.parametrize("label", ["", "   ", "x" * 201, "tab\there", 42])
def test_a_bad_label_is_refused_naming_the_field(label: object) -> None:
    with pytest.raises(ValidationError) as raised:
        LabelSealer(b"k" * 32).seal(*ROW, label)  # type: ignore[arg-type]
    assert raised.value.field == "label"
