"""CPU vs CUDA: the same spectra, eagerly and through vmap (skipped without a CUDA device)."""

import pytest
import torch

from thalia.mass import TCM
from thalia.params import ParameterSet

pytestmark = pytest.mark.gpu


def test_cuda_spectra_equal_cpu_spectra():
    model = TCM()
    space = model.space
    gen = torch.Generator().manual_seed(0)
    thetas = space.prior_mean_vector() + space.prior_var_vector().sqrt() * torch.randn(
        16, space.size, generator=gen, dtype=torch.float64
    )
    freqs = torch.arange(1.0, 91.0, dtype=torch.float64)
    cpu = torch.func.vmap(lambda th: model.csd_tensor(space.unpack(th), freqs))(thetas)
    gpu = torch.func.vmap(lambda th: model.csd_tensor(space.unpack(th), freqs.cuda()))(thetas.cuda())
    torch.testing.assert_close(gpu.cpu(), cpu, rtol=1e-9, atol=0)
    p = ParameterSet(space, {k: v.cuda() for k, v in space.unpack(thetas[3]).items()})
    eager = model.csd(p, freqs.cuda())
    assert eager.data.device.type == "cuda"
    torch.testing.assert_close(eager.data.cpu(), cpu[3], rtol=1e-9, atol=0)
