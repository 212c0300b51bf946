"""Batched SPM-model spectra (one vmap call) against set-by-set evaluation."""

from __future__ import annotations

import pytest
import torch

from thalia.mass import CMC, CMMNMDA

FREQS = torch.arange(4.0, 49.0, dtype=torch.float64)


def draws(model, n, seed=0):
    generator = torch.Generator().manual_seed(seed)
    noise = torch.randn(n, model.space.size, generator=generator, dtype=torch.float64)
    return model.space.prior_mean_vector() + noise * model.space.prior_var_vector().sqrt()


@pytest.mark.parametrize(
    "model",
    [
        CMC(),
        CMC(2, forward=[[0, 0], [1, 0]], backward=[[0, 1], [0, 0]]),
        CMMNMDA(),
        CMMNMDA(2, forward=[[0, 0], [1, 0]]),
        CMMNMDA(expansion="fixed_point"),
    ],
    ids=["cmc", "cmc2", "cmm_nmda", "cmm_nmda2", "cmm_nmda_fixed_point"],
)
def test_batch_equals_one_by_one(model):
    thetas = draws(model, 6)
    batch = model.csd_batch(thetas, FREQS)
    single = torch.stack([model.csd(model.space.unpack(theta), FREQS).data for theta in thetas])
    assert batch.shape == (6, len(FREQS), model.n_sources, model.n_sources)
    assert float((batch - single).abs().max() / single.abs().max()) <= 1e-10
    assert model.batchable == (getattr(model, "expansion", "spm") == "spm")


def test_batch_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"Invalid shape for 'thetas': expected \(n_sets, 39\), got \(3, 4\)"):
        CMC().csd_batch(torch.zeros(3, 4), FREQS)
