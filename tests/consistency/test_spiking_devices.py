"""The torch step loop on a GPU gives the CPU's spikes (runs only where CUDA is present)."""

from __future__ import annotations

import numpy as np
import pytest

from thalia.spiking import LIF, FixedInDegree, Network, simulate

pytestmark = pytest.mark.gpu


def test_cuda_matches_cpu_spike_for_spike():
    net = Network()
    net.add_population("E", 400, LIF(I_bias_pA=210.0, V_init_mV=-55.0, V_init_sd_mV=3.0))
    net.add_population("I", 100, LIF(I_bias_pA=205.0, V_init_mV=-55.0, V_init_sd_mV=3.0))
    for pre, w, r in (("E", 2.0, "ampa"), ("I", 8.0, "gaba_a")):
        for post in ("E", "I"):
            net.connect(pre, post, FixedInDegree(20), weight_nS=w, receptor=r, delay_ms=1.0, rng=7)
    cpu = simulate(net, 100.0, backend="torch", seed=3)
    gpu = simulate(net, 100.0, backend="torch", seed=3, device="cuda")
    assert np.array_equal(cpu.spike_steps, gpu.spike_steps) and np.array_equal(cpu.spike_ids, gpu.spike_ids)
