"""Time-domain simulation of the TCM with coloured innovations and delays (tcm_model.md Part A §8).

The flow of :mod:`thalia.mass.tcm_flow` is integrated (Heun or Euler–Maruyama) in float64,
batched over independent trials, with the same delays as the spectral model. The linearisation of
the delayed system below is exactly the transfer function of :meth:`TCM.transfer_from_state`,
H(ω) = C (iωI − A∘e^{−iωD})⁻¹ B, so the Welch spectrum of a long simulation in the linear regime
must match the Laplace prediction H Gu Hᴴ (tests/consistency/test_tcm_simulation.py checks it).

Delays (seconds; ``d11, self_delay = model.delay_blocks(p)``): for membrane row i (population p(i))

* dV_i/dt is the membrane equation evaluated at V_i and g_i read at t − self_delay[i];
* the conductance targets of row i use the firing m(V_j(t − d11[i, j])) of every row j, and the
  H gate h(V_i(t − self_delay[i])) of its own potential;
* each conductance decays as −K·g_i(t − self_delay[i]);
* the exogenous input u enters the AMPA target without delay.

Past values come from a ring buffer of the last steps (states, and the firing rates m(V) of every
step); fractional delays are interpolated linearly between the two neighbouring steps (of the
state, or of the firing rate for the pairwise terms). Before t = 0 the history is constant (the
initial state).

Example
-------
>>> from thalia.mass import TCM
>>> from thalia.mass.simulate import simulate
>>> model = TCM()
>>> p = model.parameters(a=[[-11.0], [0.0]])  # small innovations: the linear regime
>>> sim = simulate(model, p, duration_s=2.0, seed=0, n_trials=4, warmup_s=0.5)
>>> spectrum = sim.csd(segment_s=0.5, fmin=4, fmax=80)  # trial-averaged Welch CSD
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from tqdm.auto import tqdm

from thalia._logging import logger
from thalia._validation import as_float_tensor, check_option, check_positive_float, check_positive_int
from thalia.mass import tcm_flow
from thalia.mass.noise import power_law
from thalia.mass.tcm import TCM
from thalia.spectra import CSD
from thalia.spectra.estimate import welch_csd

__all__ = ["Simulation", "simulate", "coloured_noise", "innovation_noise"]

Tensor = torch.Tensor
DTYPE = torch.float64
NOISE_OPTIONS = ("innovations", "none")
METHODS = ("heun", "euler")
#: How often (in steps) the state is checked for NaN / inf.
_FINITE_CHECK_STEPS = 1000


@dataclass(frozen=True)
class Simulation:
    """Result of :func:`simulate`.

    Attributes
    ----------
    times : Tensor, (T,)
        Times of the recorded samples (s) since the start of the integration (warm-up included).
    channels : Tensor, (n_trials, T, n_channels)
        Observed signal y = C·(x − x*): ``model.observation(p)`` applied to the deviation of the
        state from the fixed point x* (plus channel noise if ``observation_noise=True``).
    states : Tensor or None, (n_trials, T, n_states)
        The full states (not deviations), only with ``record_states=True``.
    x_fixed : Tensor, (n_states,)
        The fixed point x* that ``channels`` and ``max_deviation`` refer to.
    max_deviation : Tensor, (n_trials, n_states)
        max |x(t) − x*| over the recorded samples, per trial and state (V in mV).
    dt : float
        Integration step (s).
    record_every : int
        Steps between recorded samples.
    channel_names : tuple of str
        Names of the channels.
    status : str
        ``"ok"``, or ``"diverged"`` when the state became non-finite (the rest is NaN).
    message : str
        What happened, with a remedy on failure.
    """

    times: Tensor
    channels: Tensor
    states: Tensor | None
    x_fixed: Tensor
    max_deviation: Tensor
    dt: float
    record_every: int
    channel_names: tuple[str, ...]
    status: str = "ok"
    message: str = ""

    @property
    def fs(self) -> float:
        """Sampling rate of the recorded series (Hz)."""
        return 1.0 / (self.dt * self.record_every)

    @property
    def n_trials(self) -> int:
        return self.channels.shape[0]

    def csd(self, segment_s: float = 1.0, *, fmin: float | None = None, fmax: float | None = None) -> CSD:
        """Welch CSD of ``channels`` (Hann, 50 % overlap, ``segment_s`` segments), averaged over trials."""
        nperseg = int(round(check_positive_float("segment_s", segment_s) * self.fs))
        spectra = [
            welch_csd(trial.T, self.fs, nperseg=nperseg, fmin=fmin, fmax=fmax, channels=self.channel_names)
            for trial in self.channels
        ]
        mean = torch.stack([s.data for s in spectra]).mean(0)
        return CSD(spectra[0].freqs, mean, self.channel_names, spectra[0].units)


# ---------------------------------------------------------------------------------------------
# Noise
# ---------------------------------------------------------------------------------------------
def _generator(seed: Any) -> torch.Generator:
    if isinstance(seed, torch.Generator):
        return seed
    generator = torch.Generator()
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(check_positive_int("seed", seed, minimum=0))
    return generator


def coloured_noise(
    psd: Callable[[Tensor], Tensor],
    n_samples: int,
    fs: float,
    *,
    n_series: int = 1,
    n_trials: int = 1,
    seed: int | torch.Generator | None = None,
) -> Tensor:
    """Gaussian noise with a given one-sided power spectral density, by spectral shaping.

    White noise w[n] ~ N(0, 1) has the one-sided PSD 2/fs; every bin of its real FFT is multiplied
    by sqrt(G(f)·fs/2) and transformed back, so the series has the one-sided PSD G(f) (units²/Hz) at
    0 < f < fs/2 (the 0-Hz bin is set to 0: zero mean). The series is periodic over its length.

    Parameters
    ----------
    psd : callable
        Maps frequencies (F,) in Hz (> 0) to the one-sided PSD (F, n_series) or (F,).
    n_samples : int
        Length of each series.
    fs : float
        Sampling rate (Hz).
    n_series, n_trials : int
        Independent series per trial, and trials.
    seed : int, torch.Generator or None
        Source of randomness (a fresh, unseeded generator if None; the global RNG is never used).

    Returns
    -------
    Tensor, (n_trials, n_samples, n_series), float64.
    """
    n_samples = check_positive_int("n_samples", n_samples, minimum=2)
    fs = check_positive_float("fs", fs)
    n_series = check_positive_int("n_series", n_series)
    n_trials = check_positive_int("n_trials", n_trials)
    generator = _generator(seed)
    white = torch.randn(n_trials, n_series, n_samples, generator=generator, dtype=DTYPE)
    freqs = torch.fft.rfftfreq(n_samples, d=1.0 / fs, dtype=DTYPE)
    density = torch.as_tensor(psd(freqs[1:]), dtype=DTYPE).reshape(len(freqs) - 1, -1)
    gain = torch.zeros(len(freqs), density.shape[1], dtype=DTYPE)
    gain[1:] = torch.sqrt(density * (fs / 2.0))
    shaped = torch.fft.irfft(torch.fft.rfft(white, dim=-1) * gain.T, n=n_samples, dim=-1)
    return shaped.transpose(1, 2).contiguous()


def innovation_noise(
    model: TCM,
    p: Mapping[str, Any],
    n_steps: int,
    dt_s: float,
    *,
    n_trials: int = 1,
    seed: int | torch.Generator | None = None,
) -> Tensor:
    """Innovations u(t) of the spectral model: one-sided PSD Gu(f) = exp(a₀)·f^(−exp(a₁)) per input.

    Returns (n_trials, n_steps, model.n_inputs), one value per integration step (held over the
    step). Input column j·ns + s (exogenous input j of source s) uses a[:, s], as the CSD does.
    """
    dt_s = check_positive_float("dt_s", dt_s)
    a = model._tensors(p)["a"]
    columns = torch.arange(model.n_inputs) % model.n_sources
    psd = lambda freqs: power_law(a[0], a[1], freqs)[:, columns]  # noqa: E731
    return coloured_noise(psd, n_steps, 1.0 / dt_s, n_series=model.n_inputs, n_trials=n_trials, seed=seed)


def _observation_noise(model: TCM, t: Mapping[str, Tensor], n: int, fs: float, n_trials: int, gen) -> Tensor:
    """Channel noise: common Gn on every channel plus independent Gs per channel, (n_trials, n, n_ch)."""
    n_ch = len(model.channels)
    common = coloured_noise(lambda f: power_law(t["b"][0], t["b"][1], f, -2.0), n, fs, n_trials=n_trials, seed=gen)
    own = coloured_noise(
        lambda f: power_law(t["c"][0], t["c"][1], f, -2.0).expand(len(f), n_ch), n, fs,
        n_series=n_ch, n_trials=n_trials, seed=gen,
    )  # fmt: skip
    return common + own


# ---------------------------------------------------------------------------------------------
# Delays
# ---------------------------------------------------------------------------------------------
class _DelayLookup:
    """Ring-buffer rows and interpolation weights of constant delays.

    The value at t_j − d, with d/dt = n + w (n integer, 0 ≤ w < 1), is (1 − w)·x[j − n] + w·x[j − n − 1].
    Buffers hold step j of membrane row i in row (j mod L)·m + i. For a block of steps
    j = k … k + n_block − 1, ``rows(k, length)`` gives the buffer rows of x[j − n] (and x[j − n − 1])
    of row ``columns`` for every step of the block and every delay, flat for ``index_select``
    (advanced indexing is much slower, and stalls when the cores are busy).
    """

    def __init__(self, delays_s: Tensor, columns: Tensor, dt: float, n_block: int):
        steps = delays_s / dt
        whole = torch.floor(steps + 1e-9)
        frac = torch.clamp(steps - whole, min=0.0)
        frac = torch.where(frac < 1e-9, torch.zeros_like(frac), frac)
        self.interpolate = bool((frac > 0).any())
        lags = whole.long()
        if self.interpolate:
            lags = torch.stack([lags, lags + 1])
            self.weights = torch.stack([1.0 - frac, frac])
        self.min_lag = int(whole.min())
        self.max_lag = int(lags.max())
        self.shape = (n_block, *lags.shape)
        self.offsets = (torch.arange(n_block).reshape(-1, *([1] * lags.ndim)) - lags[None]).reshape(-1)
        self.columns = columns.expand(self.shape).reshape(-1)
        self.m = columns.shape[-1]

    def rows(self, k: int, length: int) -> Tensor:
        return ((self.offsets + k) % length) * self.m + self.columns


def _min_lag(delays_s: Tensor, dt: float) -> int:
    return int(torch.floor(delays_s.min() / dt + 1e-9))


# ---------------------------------------------------------------------------------------------
# Integration
# ---------------------------------------------------------------------------------------------
class _DelayedFlow:
    """The delayed TCM flow over a batch of trials, with its history (ring) buffers.

    Every delayed term is at least ``min_lag`` steps old, so the derivatives of the next
    n_block steps (min_lag + 1 for Euler, min_lag for Heun) depend only on states already
    computed: they are evaluated together and accumulated with a cumulative sum (the same
    arithmetic as step by step).
    Layouts: a block of states (7, n_block, B, m); buffers (L·m, 7·B) for states and (L·m, B) for
    firing rates, row (j mod L)·m + i holding membrane row i at step j.
    """

    def __init__(self, model: TCM, t: Mapping[str, Tensor], x0: Tensor, dt: float, method: str):
        self.c = tcm_flow.coupling(t, model.cfg)
        self.smooth = model.cfg.smooth
        d11, self_delay = model.delay_blocks(t)  # zeros for delay_mode="none"
        self.min_lag = min(_min_lag(d11, dt), _min_lag(self_delay, dt))
        self.n_block = self.min_lag + 1 if method == "euler" else max(self.min_lag, 1)
        m, n_trials = d11.shape[0], x0.shape[1]
        self.pair = _DelayLookup(d11, torch.arange(m), dt, self.n_block)  # column j of M[i, j]
        self.own = _DelayLookup(self_delay, torch.arange(m), dt, self.n_block)
        self.length = max(self.pair.max_lag, self.own.max_lag) + self.n_block + 2
        self.rows = torch.arange(m)
        # the membrane equation on flattened (n_block·B·m) rows: per-row constants repeated
        self.c_flat = self.c._replace(capacitance=self.c.capacitance.repeat(self.n_block * n_trials))
        self.w_by_row = self.c.W.permute(1, 0, 2).contiguous()  # (m, 5, m): bmm over target rows
        self.bias = self.c.b[:, None, :]
        self.rate = self.c.rate[:, None, None, :]
        # constant history before t = 0; row slot·m + i holds membrane row i: (L·m, 7·B) and (L·m, B)
        self.states = x0.permute(2, 0, 1).reshape(m, -1).repeat(self.length, 1)
        self.rates = self._firing(x0[0]).T.repeat(self.length, 1)

    def _firing(self, v: Tensor) -> Tensor:
        v_hat, _ = tcm_flow.clip_voltage(v, self.smooth)
        return tcm_flow.firing(v_hat, self.c.v_threshold, self.smooth)[0]

    def _own_delayed(self, k: int) -> Tensor:
        """x_i(t_j − self_delay[i]) for the block's steps j and rows i: (7, n_block, B, m)."""
        picked = self.states.index_select(0, self.own.rows(k, self.length))
        picked = picked.reshape(*self.own.shape, 7, -1)  # (n_block, [2,] m, 7, B)
        if self.own.interpolate:
            picked = (picked * self.own.weights[None, :, :, None, None]).sum(1)
        return picked.permute(2, 0, 3, 1)

    def _pair_delayed_rates(self, k: int) -> Tensor:
        """M[i, j] = m_j(t − d11[i, j]) for the block's steps: (m_i, m_j, n_block·B)."""
        picked = self.rates.index_select(0, self.pair.rows(k, self.length))
        picked = picked.reshape(*self.pair.shape, -1)  # (n_block, [2,] m, m, B)
        if self.pair.interpolate:
            picked = (picked * self.pair.weights[None, ..., None]).sum(1)
        return picked.permute(1, 2, 0, 3).reshape(picked.shape[1], picked.shape[2], -1)

    def derivatives(self, k: int, drive: Tensor) -> Tensor:
        """dx/dt (7, n_block, B, m) at steps k … k + n_block − 1; ``drive`` u_gain·u (n_block, B, m)."""
        own = self._own_delayed(k)
        v_hat, _ = tcm_flow.clip_voltage(own[0], self.smooth)
        dv = tcm_flow.membrane(v_hat.reshape(-1), own[1:].reshape(6, -1), self.c_flat).reshape(v_hat.shape)
        linear = torch.bmm(self.w_by_row, self._pair_delayed_rates(k))  # (m, 5, n_block·B)
        linear = linear.permute(1, 2, 0).reshape(5, *v_hat.shape) + self.bias[:, None]
        h_target = self.c.h_gain * tcm_flow.h_gate(v_hat)[0]
        target = torch.cat([(linear[0] + drive)[None], linear[1:], h_target[None]])
        return torch.cat([dv[None], self.rate * (target - own[1:])])

    def store(self, k: int, block: Tensor) -> None:
        """Write the states of steps k + 1 … k + n_block (7, n_block, B, m) and their firing."""
        n, m = block.shape[1], block.shape[3]
        slots = (torch.arange(1, n + 1) + k) % self.length
        rows = (slots[:, None] * m + self.rows).reshape(-1)
        self.states.index_copy_(0, rows, block.permute(1, 3, 0, 2).reshape(n * m, -1))
        self.rates.index_copy_(0, rows, self._firing(block[0]).transpose(1, 2).reshape(n * m, -1))


def _initial_states(model: TCM, x0: Any, x_fixed: Tensor, n_trials: int) -> Tensor:
    """(7, B, m) start states from x0 (None → the fixed point; (n,) or (B, n))."""
    m = model.n_states // 7
    if x0 is None:
        start = x_fixed.expand(n_trials, -1)
    else:
        start = as_float_tensor("x0", x0)
        if start.shape not in ((model.n_states,), (n_trials, model.n_states)):
            raise ValueError(
                f"Invalid shape for 'x0': expected ({model.n_states},) or ({n_trials}, {model.n_states}), "
                f"got {tuple(start.shape)}."
            )
        start = start.expand(n_trials, -1)
    return start.reshape(n_trials, 7, m).permute(1, 0, 2).contiguous()


def _inputs(model, t, noise, n_trials, n_steps, dt, gen) -> Tensor | None:
    """(n_trials, n_steps, n_inputs) exogenous input per step, or None for none."""
    if isinstance(noise, str):
        check_option("noise", noise, NOISE_OPTIONS)
        if noise == "none":
            return None
        return innovation_noise(model, t, n_steps, dt, n_trials=n_trials, seed=gen)
    u = as_float_tensor("noise", noise)
    expected = (n_trials, n_steps, model.n_inputs)
    if tuple(u.shape) != expected:
        raise ValueError(
            f"Invalid shape for 'noise': expected 'innovations', 'none' or an input array of shape "
            f"(n_trials, n_steps, n_inputs) = {expected}, got {tuple(u.shape)}."
        )
    return u


def _to_flat(x: Tensor) -> Tensor:
    """(7, B, m) → (B, 7·m) in the model's flat state order."""
    return x.permute(1, 0, 2).reshape(x.shape[1], -1)


def simulate(
    model: TCM,
    p: Mapping[str, Any],
    duration_s: float,
    dt_s: float = 1e-4,
    *,
    seed: int | torch.Generator | None = None,
    n_trials: int = 1,
    x0: Any = None,
    noise: str | Any = "innovations",
    method: str = "heun",
    record_every: int = 1,
    warmup_s: float = 0.0,
    record_states: bool = False,
    observation_noise: bool = False,
    progress: bool = False,
) -> Simulation:
    """Integrate the delayed TCM driven by coloured innovations (float64, batched over trials).

    The input is sampled once per step, u_k = u(t_k), and the flow f_k = f(delayed history, u_k)
    uses the delays of the spectral model (module docstring). ``method="heun"`` (default) is the
    second-order Heun scheme x_{k+1} = x_k + dt·(f_k + f̃_{k+1})/2; when every delay is at least one
    step (the TCM default: ≥ 1 ms) f_{k+1} does not depend on x_{k+1}, so this is the explicit
    trapezoidal rule, with relative spectral error O((2πf·dt)²). ``method="euler"`` is
    Euler–Maruyama, x_{k+1} = x_k + dt·f_k, with error O(2πf·dt) (up to ~15 % near spectral peaks
    of the default TCM at dt = 0.1 ms). The innovations have the one-sided PSD
    Gu(f) = exp(a₀)·f^(−exp(a₁)) per input (see :func:`coloured_noise` for the normalisation), so in
    the linear regime the recorded ``channels`` have the spectrum H Gu Hᴴ of :meth:`TCM.csd` without
    the channel noise (or with it, with ``observation_noise=True``).

    Parameters
    ----------
    model : TCM
        The model (its ``delay_mode="none"`` switches the delays off; otherwise the exact delays of
        :meth:`TCM.delay_blocks` are used).
    p : ParameterSet or mapping
        Parameters (a mapping is merged into the defaults).
    duration_s : float
        Recorded duration (s), after the warm-up.
    dt_s : float
        Integration step (s).
    seed : int, torch.Generator or None
        Randomness (never the global RNG). Same seed → identical result.
    n_trials : int
        Independent trials integrated together (a batch dimension).
    x0 : array_like, optional
        Initial state, (n_states,) or (n_trials, n_states); default the fixed point. The history
        before t = 0 is held at x0.
    noise : {"innovations", "none"} or array_like
        Coloured innovations with PSD Gu (default), no input, or an explicit input
        (n_trials, n_steps, n_inputs) per integration step, with
        n_steps = round(warmup_s/dt_s) + record_every·(round(duration_s/dt_s) // record_every).
    method : {"heun", "euler"}
        Integration scheme (see above).
    record_every : int
        Record every this many steps (plain subsampling, no anti-alias filter).
    warmup_s : float
        Time integrated before recording starts (s).
    record_states : bool
        Also keep the full states (memory: n_trials·T·n_states·8 bytes).
    observation_noise : bool
        Add channel noise Gn (common) and Gs (per channel) of parameters b, c to ``channels``.
    progress : bool
        Show a tqdm progress bar.
    Notes
    -----
    The per-step tensors are tiny, so one PyTorch thread is usually fastest
    (``torch.set_num_threads(1)`` once, before simulating; thalia never changes the thread count —
    with PyTorch 2.13's CPU build, lowering and then raising it corrupts later batched
    ``torch.linalg.solve`` results on matrices of ~100 rows and more).

    Returns
    -------
    Simulation
    """
    if not isinstance(model, TCM):
        raise ValueError(f"Invalid value for 'model': expected a TCM instance, got {type(model).__name__}.")
    duration_s = check_positive_float("duration_s", duration_s)
    dt = check_positive_float("dt_s", dt_s)
    warmup_s = check_positive_float("warmup_s", warmup_s, allow_zero=True)
    n_trials = check_positive_int("n_trials", n_trials)
    record_every = check_positive_int("record_every", record_every)
    check_option("method", method, METHODS)
    n_warm = int(round(warmup_s / dt))
    n_record = int(round(duration_s / dt)) // record_every
    if n_record < 1:
        raise ValueError(
            f"Invalid value for 'duration_s': expected at least one recorded sample "
            f"(duration_s >= dt_s·record_every = {dt * record_every:g} s), got {duration_s!r}."
        )
    n_steps = n_warm + n_record * record_every
    t = model._tensors(p)
    gen = _generator(seed)
    with torch.no_grad():
        x_fixed = model.fixed_point(t).x.detach()
        u = _inputs(model, t, noise, n_trials, n_steps, dt, gen)
        start = _initial_states(model, x0, x_fixed, n_trials)
        run = _Run(model, t, start, x_fixed, dt, method, record_states)
        run.integrate(u, n_warm, n_record, record_every, progress)
        channels = run.channels.transpose(0, 1)
        if observation_noise:
            channels = channels + _observation_noise(model, t, n_record, 1.0 / (dt * record_every), n_trials, gen)
    times = (n_warm + record_every * torch.arange(n_record, dtype=DTYPE)) * dt
    states = None if run.states is None else run.states.transpose(0, 1)
    return Simulation(
        times, channels, states, x_fixed, run.max_deviation, dt, record_every,
        tuple(model.channels), run.status, run.message,
    )  # fmt: skip


class _Run:
    """The integration loop and its recordings (time-major while running)."""

    def __init__(self, model: TCM, t, start: Tensor, x_fixed: Tensor, dt: float, method: str, record_states: bool):
        self.flow = _DelayedFlow(model, t, start, dt, method)
        self.method = method
        self.x = start  # (7, B, m), the state at the current step
        self.dt = dt
        self.fixed = x_fixed.reshape(7, 1, 1, -1)
        self.observe = model.observation(t).reshape(len(model.channels), 7, -1)  # (n_ch, 7, m)
        self.u_gain_t = self.flow.c.u_gain.T.contiguous()  # (n_u, m)
        self.record_states = record_states
        self.status, self.message = "ok", f"integrated by {method} with dt = {dt:g} s"

    def _allocate(self, n_record: int) -> None:
        n_trials, m = self.x.shape[1], self.x.shape[2]
        self.channels = torch.full((n_record, n_trials, self.observe.shape[0]), float("nan"), dtype=DTYPE)
        self.states = None
        if self.record_states:
            self.states = torch.full((n_record, n_trials, 7 * m), float("nan"), dtype=DTYPE)
        self.max_deviation = torch.zeros(7, n_trials, m, dtype=DTYPE)

    def _advance(self, k: int, block: Tensor) -> Tensor:
        self.flow.store(k, block)
        self.x = block[:, -1]
        return block

    def _euler(self, drive: Tensor, n_padded: int):
        """x_{j+1} = x_j + dt·f_j, a block of n_block steps at a time; yields (k, states k+1 … k+n_block)."""
        nb = self.flow.n_block
        for k in range(0, n_padded, nb):
            slopes = self.flow.derivatives(k, drive[k : k + nb])
            yield k, self._advance(k, self.x[:, None] + self.dt * torch.cumsum(slopes, dim=1))

    def _trapezoid(self, drive: Tensor, n_padded: int):
        """Heun with all terms delayed ≥ 1 step: f_{j+1} is known, so x_{j+1} = x_j + dt·(f_j + f_{j+1})/2."""
        nb = self.flow.n_block
        previous = self.flow.derivatives(0, drive[:nb])[:, :1]
        for k in range(0, n_padded, nb):
            slopes = self.flow.derivatives(k + 1, drive[k + 1 : k + 1 + nb])  # steps k+1 … k+nb
            both = torch.cat([previous, slopes[:, :-1]], dim=1) + slopes
            previous = slopes[:, -1:]
            yield k, self._advance(k, self.x[:, None] + (0.5 * self.dt) * torch.cumsum(both, dim=1))

    def _heun(self, drive: Tensor, n_padded: int):
        """Heun (predictor–corrector) step by step, for undelayed terms (min_lag = 0)."""
        for k in range(n_padded):
            slope = self.flow.derivatives(k, drive[k : k + 1])
            self.flow.store(k, self.x[:, None] + self.dt * slope)  # the predictor, read at lag 0
            corrector = self.flow.derivatives(k + 1, drive[k + 1 : k + 2])
            yield k, self._advance(k, self.x[:, None] + (0.5 * self.dt) * (slope + corrector))

    def _steps(self, drive: Tensor, n_padded: int):
        if self.method == "euler":
            return self._euler(drive, n_padded)
        return self._trapezoid(drive, n_padded) if self.flow.min_lag >= 1 else self._heun(drive, n_padded)

    def integrate(self, u: Tensor | None, n_warm: int, n_record: int, every: int, progress: bool) -> None:
        """Steps 0 … n_warm + n_record·every − 1, recording every ``every``-th state from step n_warm."""
        self._allocate(n_record)
        n_steps, nb = n_warm + n_record * every, self.flow.n_block
        n_padded = -(-n_steps // nb) * nb
        drive = torch.zeros(n_padded + 1, *self.x.shape[1:], dtype=DTYPE)  # (steps, B, m), zero-padded
        if u is not None:
            drive[:n_steps] = u.transpose(0, 1) @ self.u_gain_t
        logger.info("simulate: %d %s steps of %g s, %d trial(s)", n_steps, self.method, self.dt, self.x.shape[1])
        self._record(self.x[:, None], 0, n_warm, every)
        check_every = max(1, _FINITE_CHECK_STEPS // nb)
        with tqdm(total=n_steps, disable=not progress, desc="simulate", unit="step", mininterval=0.5) as bar:
            for i, (k, block) in enumerate(self._steps(drive, n_padded)):
                self._record(block, k + 1, n_warm, every)
                bar.update(min(nb, n_steps - k))
                if i % check_every == 0 and not bool(torch.isfinite(self.x).all()):
                    self._diverged(k + nb)
                    break
        self.max_deviation = _to_flat(self.max_deviation)

    def _record(self, block: Tensor, first_step: int, n_warm: int, every: int) -> None:
        """Record the states of ``block`` (7, n, B, m), steps first_step …, that fall on the grid."""
        start = max(first_step, n_warm)
        start += (-(start - n_warm)) % every
        stop = min(first_step + block.shape[1], n_warm + self.channels.shape[0] * every)
        if start >= stop:
            return
        picked = block[:, start - first_step : stop - first_step : every]  # (7, n, B, m)
        deviation = picked - self.fixed
        row = (start - n_warm) // every
        rows = slice(row, row + picked.shape[1])
        self.channels[rows] = torch.einsum("ckm,knbm->nbc", self.observe, deviation)
        torch.maximum(self.max_deviation, deviation.abs().amax(1), out=self.max_deviation)
        if self.states is not None:
            self.states[rows] = picked.permute(1, 2, 0, 3).reshape(picked.shape[1], picked.shape[2], -1)

    def _diverged(self, step: int) -> None:
        self.status = "diverged"
        self.message = (
            f"the state became non-finite before step {step} (t = {step * self.dt:g} s); samples from there on "
            "are NaN. Reduce dt_s or the innovation amplitude a[0], or check that the fixed point is stable "
            "with its delays (thalia.mass.count_unstable_roots(model, p) should report 0)."
        )
        logger.warning("simulate: %s", self.message)
