"""`app.state` (web/app.py `_AppState`): Starlette's State whose values are read without a
failed attribute lookup first, and which stays in step with Starlette's own dict."""

from __future__ import annotations

import pytest

from sserelay.web.app import create_app


def test_app_state_values_are_plain_attributes_in_step_with_starlettes_dict() -> None:
    """Every value set on app.state is an instance attribute (found by the normal lookup,
    not by `__getattr__` after a failed one) and in Starlette's `_state`, however it was
    set or removed; a missing name is still an AttributeError."""
    state = create_app().state
    assert "settings" in vars(state) and vars(state)["settings"] is state._state["settings"]
    state.extra = 1
    state["item"] = 2
    assert (vars(state)["extra"], vars(state)["item"]) == (1, 2)
    assert (state._state["extra"], state._state["item"]) == (1, 2)
    del state.extra
    del state["item"]
    assert "extra" not in vars(state) and "item" not in state._state
    with pytest.raises(AttributeError):
        _ = state.extra
