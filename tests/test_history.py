"""A critic's history of past fakes: pass-through until full, then about half swapped; state round-trips."""

from __future__ import annotations

import torch

from cyclegen.history import SampleHistory


def test_history_passes_fakes_through_until_full_then_swaps_about_half() -> None:
    history = SampleHistory(6, torch.Generator().manual_seed(0))
    first = torch.arange(4.0)[:, None]
    assert torch.equal(history.exchange(first), first)
    second = torch.arange(4.0, 8.0)[:, None]
    shown = history.exchange(second)  # 2 more fill the history; the other 2 may be swapped
    assert torch.equal(shown[:2], second[:2]) and history.count == 6
    swapped = 0
    for step in range(50):
        fresh = torch.full((4, 1), 100.0 + step)
        shown = history.exchange(fresh)
        from_history = shown[:, 0] != fresh[:, 0]
        swapped += int(from_history.sum())
        assert (shown[from_history, 0] < 100.0 + step).all()  # only older samples come back
    assert 70 <= swapped <= 130  # about half of 200


def test_history_is_deterministic_and_round_trips() -> None:
    a, b = SampleHistory(5, torch.Generator().manual_seed(1)), SampleHistory(5, torch.Generator().manual_seed(1))
    batches = [torch.randn(3, 2) for _ in range(6)]
    for batch in batches[:3]:
        assert torch.equal(a.exchange(batch), b.exchange(batch))
    restored = SampleHistory(5, torch.Generator())
    restored.load_state_dict(a.state_dict())
    for batch in batches[3:]:
        assert torch.equal(a.exchange(batch), restored.exchange(batch))


def test_an_empty_history_round_trips_empty() -> None:
    fresh = SampleHistory(4, torch.Generator().manual_seed(2))
    restored = SampleHistory(4, torch.Generator())
    restored.load_state_dict(fresh.state_dict())
    assert restored.samples is None and restored.count == 0
    assert torch.equal(restored.generator.get_state(), fresh.generator.get_state())
