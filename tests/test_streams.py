"""Random streams: per-domain generators and the process's global stream, saved and restored."""

from __future__ import annotations

import torch

from cyclegen.distributed import SINGLE, Ranks
from cyclegen.streams import DomainStreams, ProcessStreams, domain_generator


def test_domain_streams_depend_on_seed_name_and_purpose_only() -> None:
    draws = {key: torch.rand(3, generator=domain_generator(*key)) for key in [(0, "x"), (0, "z"), (1, "x")]}
    assert torch.equal(torch.rand(3, generator=domain_generator(0, "x")), draws[(0, "x")])
    assert not torch.equal(draws[(0, "x")], draws[(0, "z")]) and not torch.equal(draws[(0, "x")], draws[(1, "x")])
    assert not torch.equal(torch.rand(3, generator=domain_generator(0, "x", "eval")), draws[(0, "x")])


def test_domain_streams_continue_where_they_were_saved() -> None:
    streams = DomainStreams(3, ["x", "z"])
    torch.rand(5, generator=streams["x"])
    saved = streams.state_dict()
    expected = torch.rand(4, generator=streams["x"])
    restored = DomainStreams(3, ["x", "z"])
    restored.load_state_dict(saved)
    assert torch.equal(torch.rand(4, generator=restored["x"]), expected)


def test_process_stream_round_trips_and_a_new_rank_gets_a_stream_of_its_own() -> None:
    cpu = torch.device("cpu")
    main = ProcessStreams(0, SINGLE, cpu)
    saved = main.state_dict()
    assert set(saved) == {"torch"}  # one process: no other rank's stream
    expected = torch.rand(4)
    main.load_state_dict(saved)
    assert torch.equal(torch.rand(4), expected)
    other = ProcessStreams(0, Ranks(1, 2, 1), cpu)  # a rank the checkpoint has no stream for
    other.load_state_dict(saved)
    assert not torch.equal(torch.rand(4), expected)
