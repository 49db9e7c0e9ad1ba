"""Training segments: the per-epoch order shared between processes and resumed exactly."""

from __future__ import annotations

from video_bgm.data.segments import SegmentDataset


def test_processes_share_an_epoch_without_overlap_and_resume_skips_what_was_seen():
    dataset = SegmentDataset([], 2.0, 2.0, 50.0, seed=1, random_crops=True)
    dataset.items = [None] * 10  # only the ordering is exercised here

    def places(skip=0, rank=0, world=1):
        dataset.set_epoch(3, skip=skip, rank=rank, world=world)
        return [dataset.order[p] for p in dataset.positions]

    everything = places()
    assert sorted(everything) == list(range(10))
    shares = [places(rank=r, world=3) for r in range(3)]
    assert len({len(s) for s in shares}) == 1, "every process gets as many clips"
    assert set(sum(shares, [])) == set(range(10))
    # after one batch of 2 clips on each of 2 processes, the first 4 places are done
    assert sorted(places(skip=4, rank=0, world=2) + places(skip=4, rank=1, world=2)) == sorted(everything[4:])
