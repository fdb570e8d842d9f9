"""Next-token choice shared by the LM families: greedy, temperature, top-k, seeded."""

from __future__ import annotations

import torch

from autokd.models.sampling import next_token


def test_greedy_is_the_argmax_and_top1_sampling_equals_it():
    logits = torch.randn(5, 40, generator=torch.Generator().manual_seed(0))
    greedy = next_token(logits)
    assert torch.equal(greedy[:, 0], logits.argmax(-1))
    sampled = next_token(logits, temperature=1.3, top_k=1, generator=torch.Generator().manual_seed(1))
    assert torch.equal(sampled, greedy)


def test_top_k_sampling_stays_in_the_k_most_likely_and_is_seeded():
    logits = torch.randn(64, 50, generator=torch.Generator().manual_seed(2))
    picks = next_token(logits, temperature=2.0, top_k=3, generator=torch.Generator().manual_seed(3))
    top3 = logits.topk(3, dim=-1).indices
    assert (picks == top3).any(-1).all()
    again = next_token(logits, temperature=2.0, top_k=3, generator=torch.Generator().manual_seed(3))
    assert torch.equal(picks, again)
    # a very high temperature over all tokens reaches beyond the top 3 for some rows
    wide = next_token(logits, temperature=50.0, generator=torch.Generator().manual_seed(4))
    assert not (wide == top3).any(-1).all()
