"""The thalamo-cortical neural mass model (TCM) of the tcm_py seed, behind the model interface.

Eight populations per source (SS, SP, SI, DP, DI, TP, RT, RC) with seven states each (V, AMPA,
GABA-A, NMDA, GABA-B, M, H), the flow of tcm_model.md Part B §2, element-wise delays (Part A §4),
a fixed point re-solved for every parameter set (Part A §5) and a Laplace-domain CSD (Part A §6).

Example
-------
>>> from thalia.mass import TCM
>>> model = TCM()
>>> p = model.default_parameters()
>>> fp = model.fixed_point(p)
>>> spectrum = model.csd(p, freqs=range(1, 91))
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from thalia._validation import as_float_tensor, check_frequencies, check_option, check_positive_int
from thalia.mass import tcm_constants as K
from thalia.mass import tcm_flow
from thalia.mass._autodiff import tracks_derivatives
from thalia.mass.base import NeuralMassModel
from thalia.mass.delays import first_order_operator
from thalia.mass.fixed_point import (
    FixedPoint,
    damped_newton,
    fixed_newton,
    implicit_step,
    warn_not_converged,
)
from thalia.mass.noise import assemble_csd, innovation_spectrum
from thalia.mass.tcm_flow import Coupling, JacobianBlocks, TCMConfig
from thalia.mass.tcm_priors import build_space
from thalia.mass.transfer import transfer_dense, transfer_schur
from thalia.spectra import CSD

Tensor = torch.Tensor
DTYPE = torch.float64

#: Names of the five extrinsic afferent types (index j of A / AN).
EXTRINSIC_TYPES = ("forward", "backward", "TP", "RT", "RC")
DELAY_MODES = ("elementwise", "first_order", "none")
#: Newton stops once its next step is below this (mV); that step is then taken, landing ~1e-16 mV
#: from the root (quadratic convergence), and the residual there decides `converged`.
STEP_TOL_MV = 1e-8
#: A log observation weight below this is exp(J) < 1e-304: "not observed".
UNOBSERVED_BELOW = -700.0


class StateView:
    """Named access to a flat TCM state: ``view["V", "RT"]`` → tensor over sources."""

    def __init__(self, x: Tensor, n_sources: int):
        self.array = x.reshape(K.N_STATE, K.N_POP, n_sources)

    def __getitem__(self, key: tuple[str, str]) -> Tensor:
        state, population = key
        return self.array[K.STATES.index(state), K.POPULATIONS.index(population)]


def _extrinsic_mask(spec: Any, ns: int, name: str) -> np.ndarray:
    """(5, ns, ns) bool from an array or a mapping type -> [(source, target), ...]."""
    if spec is None:
        return np.zeros((5, ns, ns), dtype=bool)
    if isinstance(spec, Mapping):
        mask = np.zeros((5, ns, ns), dtype=bool)
        for kind, pairs in spec.items():
            check_option(f"{name} connection type", kind, EXTRINSIC_TYPES)
            for pair in pairs:
                src, dst = (int(v) for v in pair)
                if not (0 <= src < ns and 0 <= dst < ns):
                    raise ValueError(
                        f"Invalid connection {pair!r} in {name}[{kind!r}]: expected (source, target) "
                        f"source indices in 0..{ns - 1}."
                    )
                mask[EXTRINSIC_TYPES.index(kind), dst, src] = True
        return mask
    mask = np.asarray(spec, dtype=bool)
    if mask.shape != (5, ns, ns):
        raise ValueError(f"Invalid shape for {name!r}: expected (5, {ns}, {ns}) booleans, got {mask.shape}.")
    return mask


class TCM(NeuralMassModel):
    """The 8-population conductance-based thalamo-cortical neural mass model.

    Parameters
    ----------
    n_sources : int
        Number of sources (regions), ns ≥ 1. The state has 56·ns entries.
    firing : {"smooth", "hard"}
        Firing function: tcm_py's smooth product of sigmoids (default), or the MATLAB hard switch
        (ill-posed for fixed points and Jacobians at the threshold; for reproduction only).
    n_inputs : {1, 2}
        Exogenous inputs per source: 1 drives RT and RC AMPA (the innovations of the spectral
        model); 2 drives SP (u₁) and RC (u₂).
    extrinsic : mapping or (5, ns, ns) bool array, optional
        Which extrinsic AMPA connections exist, e.g. ``{"forward": [(0, 1)], "backward": [(1, 0)]}``
        with (source, target) pairs; types: forward (SP→SS), backward (DP→SP/SI), TP, RT, RC.
        Absent connections are off (log gain −32, prior variance 0).
    extrinsic_nmda : same, optional
        NMDA counterpart (AN); defaults to ``extrinsic``.
    lead_field : (n_channels, ns) array, optional
        Fixed mixing of the source outputs into channels (default: identity, one channel per source).
    channels : sequence of str, optional
        Channel names (default ``"source1"``, ``"source2"``, … or ``"ch1"``… with a lead field).
    extras : sequence of str
        Optional parameters of the original flow to add: ``"endo"``, ``"thi"``, ``"global"``, ``"T1"``.
    delay_mode : {"elementwise", "first_order", "none"}
        How delays enter the transfer function: A∘exp(−iωD) (default), SPM's first-order operator
        Q = (I + D∘A)⁻¹ (D ≥ 0; SPM writes (I − D∘A)⁻¹ with negative delays), or not.
    observe_conductances : bool
        Whether the channels may read conductance states (J entries 8–55). Off by default, as in the
        original (only the 8 membrane potentials are observed, the rest of J is −1000): the spectral
        kernel then skips the conductance readout, and a J that weights a conductance raises. On, any
        J is used.
    """

    name = "tcm"
    vmap_jacobians = False  # the fixed-point search would run once per (fit, direction) pair
    natural_scales = {
        "T": lambda i: ("log", K.TAU_MS[i[1]], "ms"),
        "CT": lambda i: ("log", 8.0, "ms"),
        "TC": lambda i: ("log", 3.0, "ms"),
        "H": lambda i: ("log", 1.0, "× gain"),
        "Hn": lambda i: ("log", 1.0, "× gain"),
        "Gb": lambda i: ("log", 1.0, "× gain"),
        "L": lambda i: ("log", 1.0, "× gain"),
    }

    def __init__(
        self,
        n_sources: int = 1,
        *,
        firing: str = "smooth",
        n_inputs: int = 1,
        extrinsic: Any = None,
        extrinsic_nmda: Any = None,
        lead_field: Any = None,
        channels: Sequence[str] | None = None,
        extras: Sequence[str] = (),
        delay_mode: str = "elementwise",
        observe_conductances: bool = False,
    ):
        ns = check_positive_int("n_sources", n_sources)
        check_option("firing", firing, ("smooth", "hard"))
        check_option("n_inputs", n_inputs, (1, 2))
        self.delay_mode = check_option("delay_mode", delay_mode, DELAY_MODES)
        self.observe_conductances = check_option("observe_conductances", observe_conductances, (False, True))
        for extra in extras:
            check_option("extras", extra, ("endo", "thi", "global", "T1"))
        self.cfg = TCMConfig(ns, firing == "smooth", n_inputs)
        self.firing = firing
        a_mask = _extrinsic_mask(extrinsic, ns, "extrinsic")
        an_mask = a_mask if extrinsic_nmda is None else _extrinsic_mask(extrinsic_nmda, ns, "extrinsic_nmda")
        if lead_field is None:
            self.lead_field = torch.eye(ns, dtype=DTYPE)
        else:
            self.lead_field = as_float_tensor("lead_field", lead_field)
            if self.lead_field.ndim != 2 or self.lead_field.shape[1] != ns:
                raise ValueError(
                    f"Invalid shape for 'lead_field': expected (n_channels, {ns}), got {tuple(self.lead_field.shape)}."
                )
        n_channels = self.lead_field.shape[0]
        default_names = [f"{'source' if lead_field is None else 'ch'}{i + 1}" for i in range(n_channels)]
        self.channels = tuple(channels) if channels is not None else tuple(default_names)
        if len(self.channels) != n_channels:
            raise ValueError(f"Invalid value for 'channels': expected {n_channels} names, got {len(self.channels)}.")
        self.space = build_space(ns, n_channels, a_mask, an_mask, tuple(extras))
        self.n_sources = ns
        self.n_states = 56 * ns
        self.n_inputs = n_inputs * ns
        self._m = 8 * ns
        self._expansion = None
        self._default_expansion()  # here, outside any torch.func transform (it uses autograd)

    def _check_values(self, tensors: dict[str, Tensor]) -> dict[str, Tensor]:
        if not self.observe_conductances and bool((tensors["J"][8:] > UNOBSERVED_BELOW).any()):
            raise ValueError(
                "Invalid value for \"P['J']\": entries 8–55 (conductance states) must stay at -1000 "
                "(not observed) for a model that observes membrane potentials only; got "
                f"max {float(tensors['J'][8:].max()):g}. Build it with TCM(observe_conductances=True)."
            )
        return tensors

    def __repr__(self) -> str:
        return (
            f"TCM(n_sources={self.n_sources}, firing={self.firing!r}, n_inputs={self.cfg.n_inputs}, "
            f"channels={len(self.channels)}, delay_mode={self.delay_mode!r})"
        )

    # -- states ----------------------------------------------------------------------------------
    def state_names(self) -> list[str]:
        """Labels of the flat state, e.g. ``"V_SS[0]"`` (state, population, source)."""
        return [f"{state}_{pop}[{s}]" for state in K.STATES for pop in K.POPULATIONS for s in range(self.n_sources)]

    def state_view(self, x: Tensor) -> StateView:
        return StateView(torch.as_tensor(x), self.n_sources)

    def initial_state(self) -> Tensor:
        """tcm_py's template state (Part B §1.5) for every source, flat."""
        template = torch.as_tensor(K.TEMPLATE_STATE.T, dtype=DTYPE)  # (7, 8)
        return template[:, :, None].expand(7, 8, self.n_sources).reshape(-1).clone()

    # -- dynamics --------------------------------------------------------------------------------
    def coupling(self, p: Mapping[str, Any]) -> Coupling:
        return tcm_flow.coupling(self._tensors(p, validate=False), self.cfg)

    def flow(self, x: Tensor, u: Tensor, p: Mapping[str, Any]) -> Tensor:
        """dx/dt = f(x, u, θ); x flat (56·ns), u flat (n_inputs·ns). Pure and differentiable."""
        return tcm_flow.flow(x, u, self._tensors(p, validate=False), self.cfg)

    def jacobian_blocks(self, x: Tensor, p: Mapping[str, Any]) -> JacobianBlocks:
        return tcm_flow.jacobian_blocks(x, self.coupling(p), self.cfg)

    def jacobian(self, x: Tensor, p: Mapping[str, Any], u: Tensor | None = None) -> Tensor:
        """Exact ∂f/∂x (analytic block form, assembled; verified against autodiff in the tests)."""
        return self.jacobian_blocks(x, p).dense()

    def input_matrix(self, x: Tensor | None, p: Mapping[str, Any]) -> Tensor:
        """Exact ∂f/∂u (n, n_inputs·ns): K_AMPA·exp(C) on the AMPA rows of the driven populations."""
        c = self.coupling(p)
        conductance_rows = self._input_blocks(c).reshape(6 * self._m, -1)
        return torch.cat([torch.zeros_like(conductance_rows[: self._m]), conductance_rows])

    def _input_blocks(self, c: Coupling) -> Tensor:
        """(6, m, n_u): input matrix restricted to the conductance rows (only AMPA is nonzero)."""
        ampa = c.rate[0][:, None] * c.u_gain
        return torch.cat([ampa[None], torch.zeros_like(ampa).expand(5, *ampa.shape)])

    # -- delays ----------------------------------------------------------------------------------
    def delay_blocks(self, p: Mapping[str, Any]) -> tuple[Tensor, Tensor]:
        """Population delays: (m, m) D between membrane rows and the (m,) self-delay, seconds.

        D[i, j] = (Tc[p(i), p(j)] + ID[p(j)]) / 1000 with Tc = 8·exp(CT) ms on thalamic targets of
        cortical sources and 3·exp(TC) ms on cortical targets of thalamic sources (Part B §4.1).
        All zero for ``delay_mode="none"``.
        """
        t = self._tensors(p, validate=False)
        ns = self.n_sources
        ct = K.CT_MS * torch.exp(t["CT"])
        tc = K.TC_MS * torch.exp(t["TC"])
        like = dict(dtype=ct.dtype, device=ct.device)
        intra = torch.as_tensor(K.ID_MS, **like) * torch.exp(t["ID"])
        zeros = torch.zeros(2, 2, **like)
        top = torch.cat([torch.zeros(6, 6, **like), tc.expand(6, 2)], dim=1)
        bottom = torch.cat([ct.expand(2, 6), zeros], dim=1)
        pop = (torch.cat([top, bottom]) + intra[None, :]) / 1000.0
        if self.delay_mode == "none":
            pop = torch.zeros_like(pop)
        d11 = pop if ns == 1 else pop.repeat_interleave(ns, 0).repeat_interleave(ns, 1)
        return d11, torch.diagonal(d11)

    def delays(self, p: Mapping[str, Any]) -> Tensor:
        """The full (56·ns)² delay matrix in seconds, in the state order."""
        d11, _ = self.delay_blocks(self._tensors(p))
        return d11.repeat(7, 7)

    # -- observation -----------------------------------------------------------------------------
    def _observation_blocks(self, t: Mapping[str, Tensor]) -> tuple[Tensor, Tensor]:
        """(n_ch, m) on V and (6, n_ch, m) on the conductances."""
        ns = self.n_sources
        weights = torch.exp(t["J"]).reshape(7, 8)  # per-source weights [state, population]
        mixing = self.lead_field.to(weights) * torch.exp(t["L"])[None, :]  # (n_ch, ns), on θ's device
        # weight of state (k, p, s) in channel c: mixing[c, s] * weights[k, p]
        blocks = weights[:, None, :, None] * mixing[None, :, None, :]  # (7, n_ch, 8, ns)
        blocks = blocks.reshape(7, mixing.shape[0], 8 * ns)
        return blocks[0], blocks[1:]

    def observation(self, p: Mapping[str, Any]) -> Tensor:
        """(n_channels, 56·ns) observation matrix: lead field · exp(L) · exp(J) weights."""
        c1, c2 = self._observation_blocks(self._tensors(p))
        return torch.cat([c1, *c2], dim=1)

    # -- fixed point -----------------------------------------------------------------------------
    def _reduced(self, c: Coupling):
        def fun(v: Tensor) -> tuple[Tensor, Tensor]:
            residual, jac, _ = tcm_flow.reduced_residual(v, c, self.cfg)
            return residual, jac

        return fun

    def _start(self, x0: Any, t: Mapping[str, Tensor]) -> Tensor:
        """Newton's start: ``x0``'s membrane potentials, or the linear prediction from the default."""
        like = t["H"]
        if x0 is None:
            return self._predicted_start(t)
        x0 = as_float_tensor("x0", x0, device=like.device)
        if x0.numel() != self.n_states:
            raise ValueError(f"Invalid shape for 'x0': expected {self.n_states} states, got {x0.numel()}.")
        return x0.reshape(-1)[: self._m]

    def _default_expansion(self) -> tuple[Tensor, Tensor, Tensor]:
        """(v*, θ, dv*/dθ) at the default parameters, computed once per model instance.

        Every solve starts from v* + dv*/dθ·(θ − θ_default) (each component moved by at most 10 mV), a
        first-order prediction that depends on θ alone — results never depend on earlier calls.
        """
        if self._expansion is None:
            theta = self.space.prior_mean_vector()
            c = tcm_flow.coupling(self.space.unpack(theta), self.cfg)
            result = damped_newton(self._reduced(c), self.initial_state()[: self._m])
            v_star = result.v if result.converged else self.initial_state()[: self._m]

            sensitivity = torch.zeros(self._m, theta.numel(), dtype=theta.dtype)
            # dv*/dθ = −(∂F/∂v)⁻¹ ∂F/∂θ, one backward pass per membrane row
            if result.converged and not tracks_derivatives():
                with torch.enable_grad():
                    theta_var = theta.clone().requires_grad_(True)
                    residual, _, _ = tcm_flow.reduced_residual(
                        v_star, tcm_flow.coupling(self.space.unpack(theta_var), self.cfg), self.cfg
                    )
                    rows = [torch.autograd.grad(r, theta_var, retain_graph=True)[0] for r in residual]
                sensitivity = -torch.linalg.solve(result.jacobian, torch.stack(rows))
            self._expansion = (v_star, theta, sensitivity.to(theta))
        return self._expansion

    def _predicted_start(self, t: Mapping[str, Tensor]) -> Tensor:
        v_star, theta, sensitivity = self._default_expansion()
        like = t["H"]
        delta = self.space.pack(t).detach() - theta.to(like)
        shift = torch.clamp(sensitivity.to(like) @ delta, -10.0, 10.0)
        return v_star.to(like) + shift

    def _solve(self, t: Mapping[str, Tensor], x0: Any, tol: float, max_iter: int):
        """Adaptive Newton + implicit step → (x*, coupling, Jacobian blocks, NewtonResult, max|f(x*)|)."""
        c = tcm_flow.coupling(t, self.cfg)
        c_fixed = Coupling(*(value.detach() for value in c))
        start = self._start(x0, t)
        newton = self._reduced(c_fixed)
        result = damped_newton(newton, start, tol=tol, max_iter=max_iter, step_tol=STEP_TOL_MV)
        if not result.converged and x0 is None:  # fallbacks: continuation, tcm_py's template, rest
            rest = torch.full_like(start, K.V_LEAK_MV)
            for fallback in (
                lambda: self._continuation(t, tol, max_iter),
                lambda: damped_newton(newton, self.initial_state()[: self._m].to(start), tol=tol, max_iter=max_iter),
                lambda: damped_newton(newton, rest, tol=tol, max_iter=max_iter),
            ):
                candidate = fallback()
                if candidate.converged or candidate.norm < result.norm:
                    result = candidate
                if result.converged:
                    break
        if not result.converged:  # never a full step from a point where Newton failed
            v = result.v
        elif tracks_derivatives(*c):  # value v*, derivative dv*/dθ by the implicit function theorem
            v = implicit_step(self._reduced(c), result.v)
        else:  # the same value: one last Newton step with the residual at hand
            v = result.v - torch.linalg.solve(result.jacobian, result.residual)
        x, blocks, membrane_residual = tcm_flow.linearization(v, c, self.cfg)
        return x, c, blocks, result, float(membrane_residual.detach().abs().max())

    def _continuation(self, t: Mapping[str, Tensor], tol: float, max_iter: int, n_steps: int = 8):
        """Fallback: follow the fixed point from the default parameters θ₀ to θ along
        θ(λ) = θ₀ + λ(θ − θ₀), λ = 1/n … 1, each Newton solve starting from the previous one."""
        v_start, theta0, _ = self._default_expansion()
        theta = self.space.pack(t).detach()
        v, result = v_start.to(theta), None
        for lam in torch.linspace(1.0 / n_steps, 1.0, n_steps).tolist():
            c = tcm_flow.coupling(self.space.unpack(theta0.to(theta) + lam * (theta - theta0.to(theta))), self.cfg)
            result = damped_newton(self._reduced(c), v, tol=tol, max_iter=max_iter, step_tol=STEP_TOL_MV)
            if not result.converged:
                break
            v = result.v - torch.linalg.solve(result.jacobian, result.residual)
        return result

    def fixed_point(
        self,
        p: Mapping[str, Any],
        x0: Any = None,
        *,
        tol: float = 1e-10,
        max_iter: int = 100,
        warn: bool = True,
    ) -> FixedPoint:
        """Solve f(x, 0, θ) = 0 by damped Newton with the exact Jacobian.

        The conductances are at their targets at any fixed point, so Newton runs on the 8·ns
        membrane potentials (an exact reduction), starting from the first-order prediction
        v*(θ₀) + dv*/dθ·(θ − θ₀) around the default parameters θ₀ (or from ``x0``). If that fails it
        follows θ from θ₀ by continuation, then starts from tcm_py's template state and from rest
        (V = −70 mV everywhere), keeping the first that converges; the state is then
        assembled and one implicit step makes ``x`` differentiable in θ (dx*/dθ by the implicit
        function theorem).

        Returns a :class:`FixedPoint` (converged, residual = max|f(x)|, iterations, leading
        eigenvalue, report()). On failure it warns "Fixed point solver did not fully converge"
        with advice, and returns the last iterate with ``converged=False``.
        """
        t = self._tensors(p)
        x, _, _, result, residual = self._solve(t, x0, tol, max_iter)
        converged = residual < tol
        if converged:
            message = f"converged: max|f| = {residual:.3g} after {result.iterations} Newton iterations"
        elif warn:
            message = warn_not_converged(residual, result.iterations, tol)
        else:
            message = f"not converged: max|f| = {residual:.3g} after {result.iterations} iterations"
        return FixedPoint(
            x, converged, residual, result.iterations, message,
            _jacobian=lambda: self.jacobian(x.detach(), t),
        )  # fmt: skip

    def fixed_point_state(
        self, p: Mapping[str, Tensor], n_iter: int = 12, x0: Tensor | None = None, *, return_residual: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Fixed point by ``n_iter`` capped Newton steps plus the implicit step; vmap-safe.

        With ``return_residual=True`` also returns max|f(x)| (a 0-d tensor): under vmap there is no
        report or warning, so check it (e.g. ``< 1e-8``) to find the parameter sets that did not converge.
        """
        c = tcm_flow.coupling(p, self.cfg)
        c_fixed = Coupling(*(t.detach() for t in c))
        start = self._start(x0, p)
        v = fixed_newton(self._reduced(c_fixed), start, n_iter)
        v = implicit_step(self._reduced(c), v)
        x, _, membrane_residual = tcm_flow.linearization(v, c, self.cfg)
        return (x, membrane_residual.detach().abs().max()) if return_residual else x

    # -- spectral model --------------------------------------------------------------------------
    def transfer_from_state(
        self,
        x: Tensor,
        p: Mapping[str, Any],
        freqs: Tensor,
        method: str = "schur",
        c: Coupling | None = None,
        blocks: JacobianBlocks | None = None,
    ) -> Tensor:
        """H(ω) (F, n_channels, n_inputs·ns) of the linearisation at ``x``; ``freqs`` in Hz.

        ``method="schur"`` uses the exact Schur reduction onto the membrane block (8·ns per solve);
        ``"dense"`` solves the full (56·ns)² systems (a cross-check). With ``delay_mode`` other than
        "elementwise" the dense kernel is used. ``c`` and ``blocks`` (the coupling and the Jacobian at
        ``x``) may be passed when already computed.
        """
        check_option("method", method, ("schur", "dense"))
        t = self._tensors(p, validate=False)
        c = tcm_flow.coupling(t, self.cfg) if c is None else c
        blocks = tcm_flow.jacobian_blocks(x, c, self.cfg) if blocks is None else blocks
        d11, self_delay = self.delay_blocks(t)
        c1, c2 = self._observation_blocks(t)
        b2 = self._input_blocks(c)
        if method == "schur" and self.delay_mode != "first_order":
            c2_used = c2 if self.observe_conductances else None
            a11, a12, a21, a22 = blocks
            return transfer_schur(a11, a12, a21, a22, d11, self_delay, b2, c1, c2_used, freqs)
        A = blocks.dense()
        D = d11.repeat(7, 7)
        B = torch.cat([torch.zeros_like(b2[0]), b2.reshape(6 * self._m, -1)])
        C = torch.cat([c1, *(c2 if self.observe_conductances else torch.zeros_like(c2))], dim=1)
        if self.delay_mode == "first_order":
            q = first_order_operator(A, D)  # SPM: dx/dt = Q·f(x, u), so Q folds into A and B
            return transfer_dense(q @ A, q @ B, C, None, freqs)
        return transfer_dense(A, B, C, D, freqs)

    def csd_from_state(
        self,
        x: Tensor,
        p: Mapping[str, Any],
        freqs: Tensor,
        method: str = "schur",
        c: Coupling | None = None,
        blocks: JacobianBlocks | None = None,
    ) -> Tensor:
        """CSD tensor (F, n_ch, n_ch) = H Gu Hᴴ + Gn + Gs at the linearisation point ``x``."""
        t = self._tensors(p, validate=False)
        transfer = self.transfer_from_state(x, t, freqs, method, c, blocks)
        gu = innovation_spectrum(t["a"], freqs).repeat(1, self.cfg.n_inputs)  # (F, n_inputs·ns)
        return assemble_csd(transfer, gu, t["b"], t["c"], freqs)

    def csd_tensor(
        self, p: Mapping[str, Tensor], freqs: Tensor, n_iter: int = 12, *, return_residual: bool = False
    ) -> Tensor | tuple[Tensor, Tensor]:
        """Pure θ → CSD tensor (fixed point by ``n_iter`` Newton steps): for vmap and autodiff.

        With ``return_residual=True`` returns ``(csd, max|f(x*)|)`` so that a batch can flag the
        parameter sets whose fixed point did not converge.
        """
        x, residual = self.fixed_point_state(p, n_iter, return_residual=True)
        csd = self.csd_from_state(x, p, freqs)
        return (csd, residual) if return_residual else csd

    def csd_batch(
        self, thetas: Any, freqs: Any, *, n_iter: int = 12, tol: float = 1e-8, fallback: bool = True
    ) -> tuple[Tensor, Tensor]:
        """CSDs of a batch of parameter vectors through ``torch.func.vmap``, with a safety net.

        Parameters
        ----------
        thetas : (B, space.size) array
            Parameter vectors in the layout of ``self.space`` (``ParameterSet.to_vector()``).
        freqs : array_like
            Frequencies in Hz.
        n_iter : int
            Newton steps of the batched fixed point.
        tol : float
            Sets whose batched fixed point has max|f| above ``tol`` (or non-finite) are re-solved one by
            one with the eager solver (damped Newton, continuation from the default) when ``fallback``.

        Returns
        -------
        (csd, residual) : (B, F, n_ch, n_ch) complex and (B,) max|f(x*)| per set.
        """
        thetas = self.parameter_vectors(thetas)
        freqs = check_frequencies("freqs", freqs).to(thetas.device)
        batched = torch.func.vmap(
            lambda theta: self.csd_tensor(self.space.unpack(theta), freqs, n_iter, return_residual=True)
        )
        csd, residual = batched(thetas)
        if fallback:
            for k in torch.nonzero(~(residual <= tol)).flatten().tolist():
                t = self.space.unpack(thetas[k])
                x, c, blocks, _, fixed_residual = self._solve(t, None, 1e-10, 100)
                csd[k] = self.csd_from_state(x, t, freqs, c=c, blocks=blocks)
                residual[k] = fixed_residual
        return csd, residual

    def spectrum_function(self, freqs: Any, *, n_iter: int = 12, tol: float = 1e-6, **options: Any):
        """Pure θ -> CSD tensor (F, n_ch, n_ch) for inversion (fixed point by ``n_iter`` Newton steps
        plus the implicit step): NaN where the fixed point is not found to max|f| <= ``tol``, so that
        an inversion backs off instead of using a wrong spectrum. ``options`` (e.g. ``jacobian``,
        ``delay``) select SPM's modal spectral mode instead of the transfer-function one."""
        if options:
            return super().spectrum_function(freqs, **options)
        freqs = check_frequencies("freqs", freqs)

        def csd(theta: Tensor) -> Tensor:
            value, residual = self.csd_tensor(self.space.unpack(theta), freqs.to(theta), n_iter, return_residual=True)
            return torch.where(residual <= tol, value, torch.full_like(value, float("nan")))

        return csd

    def transfer(self, p: Mapping[str, Any], freqs: Any, *, x: Any = None, method: str = "schur") -> Tensor:
        """Transfer function H(f) (F, n_channels, n_inputs·ns) at the fixed point (or at ``x``)."""
        freqs = check_frequencies("freqs", freqs)
        state = self.fixed_point(p).x if x is None else as_float_tensor("x", x, (self.n_states,))
        return self.transfer_from_state(state, p, freqs, method)

    def csd(self, p: Mapping[str, Any], freqs: Any, *, x: Any = None, method: str = "schur") -> CSD:
        """Cross-spectral density at the fixed point of θ, as a :class:`~thalia.spectra.CSD`.

        Parameters
        ----------
        p : ParameterSet or mapping
            Parameters (a mapping is merged into the defaults and validated).
        freqs : array_like
            Frequencies in Hz (> 0).
        x : array_like, optional
            Linearise here instead of at the fixed point.
        """
        freqs = check_frequencies("freqs", freqs)
        t = self._tensors(p)
        if x is None:
            state, c, blocks, result, residual = self._solve(t, None, 1e-10, 100)
            if residual >= 1e-10:
                warn_not_converged(residual, result.iterations, 1e-10)
        else:
            state, c, blocks = as_float_tensor("x", x, (self.n_states,)), None, None
        data = self.csd_from_state(state, t, freqs, method, c, blocks)
        return CSD(freqs, data, self.channels, units="a.u.")
