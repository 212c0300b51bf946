"""SPM's canonical microcircuit (CMC): four populations, two states each, per source.

The model of Bastos et al. (2012, Neuron 76:695) as specified for DCM (Moran et al. 2013, Front
Comput Neurosci 7:57): spiny stellate (ss), superficial pyramidal (sp), inhibitory interneurons (ii)
and deep pyramidal (dp) cells, each a second-order synaptic kernel driven by the sigmoid firing of
the others. Per source i and population k with time constant T_k (ms, ×exp(T)):

    dV_k/dt = I_k,   dI_k/dt = (u_k − 2 I_k − V_k/T_k) / T_k

with S(V) = 1/(1 + e^{−R V}) − 1/2, R = 2/3·exp(S), and afferents u (G: intrinsic gains, ×200 s⁻¹):

    u_ss = A₁S(V_sp) + 512·u − G₁S(V_ss) − G₃S(V_ii) − G₂S(V_sp)
    u_sp = −A₃S(V_dp) + G₈S(V_ss) − G₇S(V_sp)
    u_ii = −A₄S(V_dp) + G₅S(V_ss) + G₆S(V_dp) − G₄S(V_ii)
    u_dp = A₂S(V_sp) − G₁₀S(V_dp) − G₉S(V_ii)

G = [4 4 8 4 4 2 4 4 2 1]·200, T = [2 2 16 28] ms, extrinsic scales E = [1 ½ 1 ½]·200; the free gains
G(:,1..4) scale G₇, G₂, G₃, G₄; M modulates G₇ by exp(−32·M·S(V_dp)). Reciprocal extrinsic
connections are divided by 5. The state is SPM's (ns, 8) array flattened column-major: entry
``i + ns·k`` is state k (V_ss, I_ss, V_sp, I_sp, V_ii, I_ii, V_dp, I_dp) of source i. x = 0 is a fixed
point for every θ (S(0) = 0), and it is SPM's expansion point.

Delays (``spm_dcm_delay``): 1·exp(D_ii) ms between the states of one source, 8·exp(D_ij) ms between
sources, none from a current to its own voltage (SPM's ``nodelay``); SPM folds them into the Jacobian
with its Robbins–Monro series (:func:`thalia.mass.delays.spm_series_operator`). The LFP of source i is
L_i·Σ_k J_k x(i, k).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from thalia._validation import check_positive_int
from thalia.mass._constants import const
from thalia.mass.spm_base import SPMModel, extrinsic_masks, reciprocal_damping
from thalia.mass.spm_table import spm_spec
from thalia.params import ParamSpace

Tensor = torch.Tensor

EXTRINSIC_SCALE = (200.0, 100.0, 200.0, 100.0)  # forward (sp→ss, sp→dp), backward (dp→sp, dp→ii)
INTRINSIC_GAINS = np.array([4, 4, 8, 4, 4, 2, 4, 4, 2, 1], dtype=float) * 200.0
TIME_CONSTANTS_MS = np.array([2.0, 2.0, 16.0, 28.0])
TIME_CONSTANTS_S = TIME_CONSTANTS_MS / 1000.0
SIGMOID_SLOPE = 2.0 / 3.0
ENDOGENOUS_GAIN = 512.0
FREE_GAIN_COLUMNS = (6, 1, 2, 3)  # P.G(:, i) scales G(:, 7), G(:, 2), G(:, 3), G(:, 4) (0-based here)
_FREE_GAINS = np.zeros((10, 4))
_FREE_GAINS[FREE_GAIN_COLUMNS, range(4)] = 1.0
_SELF_SP = np.eye(10)[6]
#: ∂drive[p]/∂S[q] = Σ_k sign·G_k: (p·4 + q, k) for the ten intrinsic gains (populations ss, sp, ii, dp).
_LOCAL_SIGNS = np.zeros((16, 10))
for _row, _k, _sign in [(0, 0, -1), (1, 1, -1), (2, 2, -1), (4, 7, 1), (5, 6, -1),
                        (8, 4, 1), (10, 3, -1), (11, 5, 1), (14, 8, -1), (15, 9, -1)]:  # fmt: skip
    _LOCAL_SIGNS[_row, _k] = _sign
#: The same for the extrinsic gains A₁..A₄ and the dp → sp modulation term (last column).
_EXTRINSIC_SIGNS = np.zeros((16, 5))
for _row, _k, _sign in [(1, 0, 1), (7, 2, -1), (7, 4, 1), (11, 3, -1), (13, 1, 1)]:
    _EXTRINSIC_SIGNS[_row, _k] = _sign
INTRINSIC_DELAY_MS = 1.0
EXTRINSIC_DELAY_MS = 8.0
STATE_NAMES = ("V_ss", "I_ss", "V_sp", "I_sp", "V_ii", "I_ii", "V_dp", "I_dp")


def cmc_space(ns: int, forward: np.ndarray, backward: np.ndarray, modulatory: np.ndarray) -> ParamSpace:
    """CMC priors for ``ns`` sources (SPM's ``spm_cmc_priors`` + LFP lead field + spectral priors).

    ``forward`` / ``backward`` / ``modulatory`` are (ns, ns) boolean adjacency matrices [target, source].
    """
    a = np.stack([forward, forward, backward, backward], axis=-1).astype(bool)
    delays = (a.any(-1) | np.eye(ns, dtype=bool)) / 64
    j_mean = np.zeros((1, 8))
    j_mean[0, 2] = 1.0
    j_var = np.zeros((1, 8))
    j_var[0, [0, 6]] = 1 / 32
    specs = [
        spm_spec("M", (ns, ns), 0.0, modulatory / 32, "modulation of sp self-inhibition by dp firing"),
        spm_spec("A", (ns, ns, 4), np.where(a, 0.0, -32.0), a / 16, "extrinsic gains exp(A){k}", cell=True),
        spm_spec("C", (ns, 1), 0.0, 1 / 32, "exogenous input gain (inert in the CSD: endogenous input)"),
        spm_spec("T", (ns, 4), 0.0, 1 / 32, "time constants [2 2 16 28]·exp(T) ms"),
        spm_spec("G", (ns, 4), 0.0, 1 / 32, "intrinsic gains: sp→sp, sp→ss, ii→ss, ii→ii"),
        spm_spec("D", (ns, ns), 0.0, delays, "delays: 1·exp(D_ii) ms within, 8·exp(D_ij) ms between sources"),
        spm_spec("S", (1, 1), 0.0, 1 / 64, "sigmoid slope 2/3·exp(S)"),
        spm_spec("R", (1, 2), 0.0, 1 / 16, "input onset and dispersion (inert in the CSD)"),
        *lfp_specs(ns, j_mean, j_var),
        *spectral_specs(ns, ns),
    ]
    return ParamSpace(tuple(specs))


def lfp_specs(ns: int, j_mean: np.ndarray, j_var: np.ndarray) -> list:
    """LFP lead field (``spm_L_priors``): gains L (1, ns) and state weights J."""
    return [
        spm_spec("L", (1, ns), 1.0, 64.0, "LFP gain of each source (linear)"),
        spm_spec("J", j_mean.shape, j_mean, j_var, "contribution of each state to the LFP"),
    ]


def spectral_specs(n_inputs: int, n_channels: int) -> list:
    """Spectral priors (``spm_ssr_priors`` as in the reference set-up): a, b, c, d, f."""
    v = 1 / 128
    return [
        spm_spec("a", (2, n_inputs), 0.0, v, "innovations Gu = exp(a1)·w^-exp(a2)·exp(DCT·d)"),
        spm_spec("b", (2, 1), 0.0, v, "common channel noise Gn = exp(b1-2)·w^-exp(b2)"),
        spm_spec("c", (2, n_channels), 0.0, v, "channel noise Gs = exp(c1-2)·w^-exp(c2)"),
        spm_spec("d", (4, n_inputs), 0.0, v, "innovations: DCT coefficients 2..5"),
        spm_spec("f", (2, 1), 0.0, 1 / 64, "spectral filter exp(f1 + f2·(1:nw)/nw)"),
    ]


def _kron(a: Tensor, b: Tensor) -> Tensor:
    """Kronecker product (by broadcasting, so that it works under vmap)."""
    rows, cols = a.shape[0] * b.shape[0], a.shape[1] * b.shape[1]
    return (a[:, None, :, None] * b[None, :, None, :]).reshape(rows, cols)


class CMC(SPMModel):
    """SPM's canonical microcircuit model (``spm_fx_cmc``) behind thalia's model interface.

    Parameters
    ----------
    n_sources : int
        Number of sources (one LFP channel each).
    forward, backward, modulatory : (ns, ns) array_like of bool, optional
        Extrinsic connections [target, source]: forward (sp→ss and sp→dp), backward (dp→sp and
        dp→ii), and the modulation M. Default: none (independent sources).

    Example
    -------
    >>> from thalia.mass import CMC
    >>> model = CMC()
    >>> csd = model.csd(model.default_parameters(), freqs=range(4, 49))
    """

    name = "cmc"
    states_per_source = 8
    delay_method = "exact"
    spm_delay_method = "spm_series"

    def __init__(self, n_sources: int = 1, forward: Any = None, backward: Any = None, modulatory: Any = None):
        self.n_sources = check_positive_int("n_sources", n_sources)
        ns = self.n_sources
        masks = extrinsic_masks(ns, forward=forward, backward=backward, modulatory=modulatory)
        self.space = cmc_space(ns, masks["forward"], masks["backward"], masks["modulatory"])
        self._setup(ns)

    def state_names(self) -> list[str]:
        return [f"{name}[{i}]" for name in STATE_NAMES for i in range(self.n_sources)]

    # -- dynamics --------------------------------------------------------------------------------
    natural_scales = {
        "T": lambda i: ("log", TIME_CONSTANTS_MS[i[1]], "ms"),
        "G": lambda i: ("log", INTRINSIC_GAINS[FREE_GAIN_COLUMNS[i[1]]], "/s"),
        "D": lambda i: ("log", 1.0 if i[0] == i[1] else 8.0, "ms"),
        "S": lambda i: ("log", SIGMOID_SLOPE, "/mV"),
        "L": lambda i: ("linear", 1.0, ""),
    }

    def flow(self, x: Tensor, u: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """dx/dt of ``spm_fx_cmc`` (pure; differentiable in x, u and every parameter)."""
        like = dict(dtype=x.dtype, device=x.device)
        v, i, s, _ = self._firing(x, p)  # (4, ns): ss, sp, ii, dp
        t = const(TIME_CONSTANTS_S, x)[:, None] * torch.exp(p["T"].T)  # (4, ns)
        g = self._gains(p, s[3], like)  # (10, ns)
        a = [self._extrinsic(p, k, like) for k in range(4)]
        drive = torch.stack(
            [
                a[0] @ s[1] + ENDOGENOUS_GAIN * u - g[0] * s[0] - g[2] * s[2] - g[1] * s[1],
                -(a[2] @ s[3]) + g[7] * s[0] - g[6] * s[1],
                -(a[3] @ s[3]) + g[4] * s[0] + g[5] * s[3] - g[3] * s[2],
                a[1] @ s[1] - g[9] * s[3] - g[8] * s[2],
            ]
        )
        di = (drive - 2 * i - v / t) / t
        return torch.stack([i, di], dim=1).reshape(-1)

    def _firing(self, x: Tensor, p: Mapping[str, Tensor]) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """(V, I, S(V), S'(V)), each (4, ns): populations ss, sp, ii, dp."""
        X = x.reshape(8, self.n_sources)
        slope = SIGMOID_SLOPE * torch.exp(p["S"][0, 0])
        sig = torch.sigmoid(slope * X[0::2])
        return X[0::2], X[1::2], sig - 0.5, slope * sig * (1 - sig)

    def jacobian(self, x: Tensor, p: Mapping[str, Tensor], u: Tensor | None = None) -> Tensor:
        """Exact ∂f/∂x in closed form ((8ns, 8ns); equal to autodiff of :meth:`flow`, and faster)."""
        ns = self.n_sources
        like = dict(dtype=x.dtype, device=x.device)
        _, _, s, ds = self._firing(x, p)
        t = const(TIME_CONSTANTS_S, x)[:, None] * torch.exp(p["T"].T)  # (4, ns)
        w = self._drive_sensitivity(p, s, like)  # (4, 4, ns, ns): ∂drive[p, i] / ∂S[q, j]
        eye = torch.eye(ns, **like)
        eye4 = torch.eye(4, **like)
        dv = (w * ds[None, :, None, :] - (eye4[:, :, None, None] * eye) / t[:, None, :, None]) / t[:, None, :, None]
        di = torch.diag_embed(-2.0 / t)[:, None] * eye4[:, :, None, None]  # (4, 4, ns, ns)
        ones = eye4[:, :, None, None] * eye
        zero = torch.zeros_like(dv)
        rows_v = torch.stack([zero, ones], dim=2)  # dV_p/d(V_q, I_q): (4, 4, 2, ns, ns)
        rows_i = torch.stack([dv, di], dim=2)
        blocks = torch.stack([rows_v, rows_i], dim=1)  # (p, r, q, c, i, j)
        return blocks.permute(0, 1, 4, 2, 3, 5).reshape(8 * ns, 8 * ns)

    def _drive_sensitivity(self, p: Mapping[str, Tensor], s: Tensor, like: dict) -> Tensor:
        """∂drive[p, i] / ∂S[q, j] as (4, 4, ns, ns)."""
        ns = self.n_sources
        g = self._gains(p, s[3], like)  # (10, ns)
        local = (const(_LOCAL_SIGNS, s) @ g).reshape(4, 4, ns)
        a = [self._extrinsic(p, k, like) for k in range(4)]
        modulation = 32.0 * p["M"] * (g[6] * s[1])[:, None]  # ∂(−G₇S_sp)/∂S_dp through exp(−32·M·S_dp)
        extrinsic = torch.einsum("pk,kij->pij", const(_EXTRINSIC_SIGNS, s), torch.stack([*a, modulation]))
        return torch.diag_embed(local) + extrinsic.reshape(4, 4, ns, ns)

    def input_matrix(self, x: Tensor, p: Mapping[str, Tensor]) -> Tensor:
        """∂f/∂u (8ns, ns): the endogenous input 512·u drives each source's spiny stellate current."""
        ns = self.n_sources
        t_ss = TIME_CONSTANTS_MS[0] / 1000.0 * torch.exp(p["T"][:, 0])
        second = torch.eye(8, dtype=x.dtype, device=x.device)[:, 1, None, None]  # the I_ss rows
        return (second * torch.diag(ENDOGENOUS_GAIN / t_ss)[None]).reshape(8 * ns, ns)

    def _gains(self, p: Mapping[str, Tensor], s_dp: Tensor, like: dict) -> Tensor:
        """The ten intrinsic gains (10, ns): fixed values scaled by exp(G) and the dp modulation of G₇."""
        log_scale = const(_FREE_GAINS, s_dp) @ p["G"].T  # (10, ns)
        modulation = -32.0 * (p["M"] @ s_dp)  # exp(−32·M·S_dp) on G₇
        log_scale = log_scale + const(_SELF_SP, s_dp)[:, None] * modulation[None]
        return const(INTRINSIC_GAINS, s_dp)[:, None] * torch.exp(log_scale)

    def _extrinsic(self, p: Mapping[str, Tensor], k: int, like: dict) -> Tensor:
        ns = self.n_sources
        if ns == 1:
            return torch.zeros(1, 1, **like)  # SPM retains no extrinsic coupling for one source
        return reciprocal_damping(torch.exp(p["A"][:, :, k]) * EXTRINSIC_SCALE[k], 4.0)

    def expansion_point(self, p: Mapping[str, Any]) -> Tensor:
        """x = 0, the fixed point of every parameter set (SPM's ``M.x``), on the parameters' device."""
        return torch.zeros(self.n_states, dtype=torch.float64, device=p["L"].device)

    # -- delays and observation ------------------------------------------------------------------
    def delays(self, p: Mapping[str, Any]) -> Tensor:
        """(8ns, 8ns) delays in seconds, zero from each current to its own voltage (SPM's ``nodelay``)."""
        t = self._tensors(p, validate=False)
        de = torch.exp(t["D"])
        within = torch.diag(torch.diagonal(de)) * (INTRINSIC_DELAY_MS / 1000.0)
        between = (de - torch.diag(torch.diagonal(de))) * (EXTRINSIC_DELAY_MS / 1000.0)
        ones = torch.ones(8, 8, dtype=de.dtype, device=de.device)
        off = ones - torch.eye(8, dtype=de.dtype, device=de.device)
        d = _kron(ones, between) + _kron(off, within)
        return d * self._nodelay_mask.to(d)

    def observation(self, p: Mapping[str, Any]) -> Tensor:
        """(ns, 8ns) LFP matrix: channel i reads L_i·Σ_k J_k x(i, k)."""
        t = self._tensors(p, validate=False)
        return self._lfp(t["L"][0], t["J"][0])

    def _setup(self, ns: int) -> None:
        self.n_states = 8 * ns
        self.n_inputs = ns
        self.channels = tuple(f"LFP{i + 1}" for i in range(ns))
        mask = torch.ones(8 * ns, 8 * ns, dtype=torch.float64)
        for k in range(0, 8, 2):  # dV/dt = I: no delay from a current to its own voltage
            rows = torch.arange(ns) + ns * k
            mask[rows, rows + ns] = 0.0
        self._nodelay_mask = mask
