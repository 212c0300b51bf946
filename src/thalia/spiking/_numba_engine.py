"""The compiled CPU step loop (numba) of :mod:`thalia.spiking.engine`.

:class:`NumbaEngine` (the state of a ``Simulator``) implements the step semantics of the engine's
module docstring with the operations of ``engine._TorchEngine`` in the same floating-point order, so
both backends produce the same spikes:

* one ``@numba.njit(cache=True)`` kernel, :func:`_steps`, runs the steps of a call that lie in one
  chunk of the randomness pool (``engine.NOISE_CHUNK`` steps, the block of noise the shared
  ``torch.Generator`` draws at once); it stops early only when the spike arrays are full, and
  :meth:`NumbaEngine.advance` grows them and resumes. The arrays of the state and the constants are
  prepared once, so a call costs ~15 µs besides its steps;
* neurons are stepped in runs of identical parameters (*segments*: a population, or several with one
  neuron model), so every parameter is a scalar in the inner loops, and in tiles of ``_TILE`` neurons
  so that each tile's passes (arrivals and decay per receptor, membrane, spikes) stay in the L1 cache;
* only the receptors that some synapse uses are stored and summed. Every skipped term is an exact
  zero (``g + 0``, ``x + 0·E``), so the sums are bit for bit those of the torch loop;
* the membrane's ``exp`` is SLEEF's double-precision ``expd_u10`` algorithm written out (error
  ≤ 1 ulp), which LLVM vectorises. PyTorch's ``exp`` (MKL or SLEEF) may differ from it in the last
  bit, which is the only difference between the backends (voltages agree to ~1e-13 mV);
* spikes propagate event by event through the CSR synapse arrays into the ring buffer, sources in
  increasing index and synapses in CSR order (the order of the torch loop's ``index_add_``);
* spike sources: each pool chunk's Poisson draws and the given schedule become one list of *forced*
  spikes sorted by (step, neuron) (merged with a call's ``inputs``), which the kernel applies after
  each tile's threshold;
* the ``averaged`` integrator multiplies each arrived conductance (and g_w) by its step average κ
  (κ = 1 exactly for ``exponential_euler``, so that scheme's sums are unchanged);
* the T-current (segments with g_T > 0) is one more term after adaptation in g_tot and in the
  numerator, with the h gate updated from V at the start of the step (a second inlined copy of the
  membrane loop, so that segments without it run the plain loop);
* plasticity (:func:`_plasticity`) runs after each step over the plastic synapses with the torch
  loop's expressions in its order; weights change in the synapse array that propagation reads;
* recorded AMPA/GABA-A currents are summed per population from the arrived conductances before
  each tile's membrane pass, in neuron order (torch's ``sum`` adds in another order: ~1e-15 relative);
  recorded state variables (:func:`_record`) are copied after each step.

Absent features cost nothing in the plain loop: each is one test per tile or per step.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numba
import numpy as np
import torch
from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic

from thalia.spiking.network import SPLITMIX_GAMMA, SPLITMIX_M1, SPLITMIX_M2, poisson_cdf_table
from thalia.spiking.neurons import MG_BLOCK_MM, MG_BLOCK_SLOPE_PER_MV, RECEPTORS

if TYPE_CHECKING:
    from thalia.spiking.engine import _Randomness
    from thalia.spiking.network import Compiled

_TILE = 1024
_MIN_SPIKE_CAPACITY = 1 << 16
#: Neuron parameters the kernel implements; any other key in ``Compiled.params`` raises.
_KNOWN_PARAMS = frozenset(
    "C g_L E_L V_th V_reset ref_steps I_bias E_rev decay mg adapt_b adapt_E adapt_decay noise_scale "
    "V0_mean V0_sd g_T E_T V_h h_decay_minus h_decay_plus h0 poisson_p avg_factor adapt_avg_factor cuba "
    "drive_lambda drive_weight drive_receptor".split()
)
#: Columns of the per-segment scalar table ``seg_f``.
_C, _GL, _GLEL, _VTH, _VRESET, _MGC, _ADAPT_B, _ADAPT_E, _ADAPT_DECAY, _NOISE = range(10)
_GT, _ET, _VH, _H_MINUS, _H_PLUS, _AVG_W, _CUBA, _DRIVE_W = range(10, 18)
#: Codes of the recorded variables other than conductances (>= 0: the stored receptor; -1: unused receptor).
_REC_V, _REC_ADAPT, _REC_H, _REC_ZERO = -2, -3, -4, -1
#: Rows of the plastic-synapse tables: ``pl_i`` (int) and ``pl_f`` (float); state rows x, y, θ.
_P_INDEX, _P_PRE, _P_POST = range(3)
_P_A_PLUS, _P_A_MINUS, _P_ETA, _P_DECAY_X, _P_DECAY_Y, _P_RATE_X = range(6)
_P_RATE_Y, _P_TARGET, _P_TAU_THETA, _P_WMIN, _P_WMAX = range(6, 11)
_NMDA = RECEPTORS.index("nmda")
_AMPA, _GABA_A = RECEPTORS.index("ampa"), RECEPTORS.index("gaba_a")
#: SplitMix64 constants of the Poisson drive's counter-based generator (``network.SPLITMIX_*``), unsigned.
_GAMMA, _M1, _M2 = (np.uint64(c % 2**64) for c in (SPLITMIX_GAMMA, SPLITMIX_M1, SPLITMIX_M2))

# SLEEF expd_u10 (Boost Software License 1.0): Cody–Waite reduction by ln 2 and a degree-10
# polynomial on |s| < ln2 / 2, evaluated with fused multiply-adds as SLEEF does.
_R_LN2 = 1.442695040888963407359924681001892137426645954152985934135449406931
_L2U = 0.69314718055966295651160180568695068359375
_L2L = 0.28235290563031577122588448175013436025525412068e-12
_ROUND = 6755399441055744.0  # 1.5 * 2**52: (x + _ROUND) - _ROUND rounds to nearest, ties to even
_EXP_MAX = 709.78271289338397
_EXP_MIN = -1000.0


@intrinsic
def _fma(typingctx, a, b, c):
    """a·b + c with one rounding (llvm.fma)."""
    sig = types.float64(types.float64, types.float64, types.float64)

    def codegen(context, builder, signature, args):
        double = ir.DoubleType()
        fn = cgutils.get_or_insert_function(builder.module, ir.FunctionType(double, [double] * 3), "llvm.fma.f64")
        return builder.call(fn, args)

    return sig, codegen


@intrinsic
def _pow2i(typingctx, q):
    """2**q for an integer q in the normal range (the bits of the double built directly)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        i64 = ir.IntType(64)
        bits = builder.shl(builder.add(args[0], ir.Constant(i64, 0x3FF)), ir.Constant(i64, 52))
        return builder.bitcast(bits, ir.DoubleType())

    return sig, codegen


@numba.njit(inline="always", cache=True)
def _exp(d):
    u = (d * _R_LN2 + _ROUND) - _ROUND
    q = np.int64(u)
    s = _fma(u, -_L2U, d)
    s = _fma(u, -_L2L, s)
    s2 = s * s
    s4 = s2 * s2
    s8 = s4 * s4
    hi = _fma(s, 0.2081276378237164457e-8, 0.2511210703042288022e-7)
    mid = _fma(
        s2,
        _fma(s, 0.2755762628169491192e-6, 0.2755723402025388239e-5),
        _fma(s, 0.2480158687479686264e-4, 0.1984126989855865850e-3),
    )
    lo = _fma(
        s2,
        _fma(s, 0.1388888888914497797e-2, 0.8333333333314938210e-2),
        _fma(s, 0.4166666666666602598e-1, 0.1666666666666669072e0),
    )
    p = _fma(s8, hi, _fma(s4, mid, lo))
    p = _fma(p, s, 0.5)
    p = _fma(p, s, 1.0)
    p = _fma(p, s, 1.0)
    half = q >> 1
    p = p * _pow2i(half) * _pow2i(q - half)
    p = np.inf if d > _EXP_MAX else p
    return 0.0 if d < _EXP_MIN else p


@numba.njit(cache=True)
def exp_kernel(x, out):
    """``out[i] = exp(x[i])`` with the kernel's exp (for tests)."""
    for i in range(x.shape[0]):
        out[i] = _exp(x[i])


@numba.njit(cache=True, error_model="numpy", nogil=True)
def _steps(
    t, stop, rec0, noise_t0, noise, force_steps, force_ids, traces, synaptic, spike_steps, spike_ids, count,
    drive_key, V, ref, g, gw, h, buf, syn_w, pl_state, last,
    n_slots, seg_lo, seg_hi, seg_f, seg_ref, seg_E, seg_decay, seg_avg, nmda_k, adapt, neg_dt, noisy,
    indptr, syn_off, cur_k, cur_lo, cur_hi, pl_i, pl_f, dt_ms, watch, rec_codes, seg_drive_k, seg_drive_row, drive_cdf,
):  # fmt: skip
    """Steps ``t .. stop-1`` in place; returns (next step, spike count), early when the spike arrays fill.

    Rows ``t − rec0`` of ``traces`` and ``synaptic`` record step t; row ``t − noise_t0`` of ``noise`` is its noise.
    """
    n = V.shape[0]
    gs, num, block, extra = np.empty(_TILE), np.empty(_TILE), np.ones(_TILE), np.zeros(_TILE)
    fired = np.zeros(_TILE, dtype=np.bool_)
    cursor = np.searchsorted(force_steps, t)  # the first forced spike of step t or later
    recording, plastic = cur_lo.shape[0] > 0, pl_i.shape[1] > 0
    while t < stop:
        if count + n > spike_steps.shape[0]:
            break
        now, first = t % n_slots, count
        for s in range(seg_lo.shape[0]):
            t_current, kd = seg_f[s, _GT] > 0.0, seg_drive_k[s]
            for a in range(seg_lo[s], seg_hi[s], _TILE):
                b = min(a + _TILE, seg_hi[s])
                if kd >= 0:
                    _drive(a, b, t, n, drive_key, drive_cdf[seg_drive_row[s]], seg_f[s, _DRIVE_W], extra)
                if recording:
                    _currents(
                        a, b, t - rec0, s, now, V, g, buf, seg_f, seg_E, seg_avg, cur_k, cur_lo, cur_hi, synaptic, kd,
                        extra,
                    )  # fmt: skip
                _conductances(
                    a, b, now, s, V, g, buf, seg_f, seg_E, seg_decay, seg_avg, nmda_k, gs, num, block, kd, extra
                )
                noise_tile = noise[t - noise_t0, a:b] if noisy else noise[0, 0:0]
                if t_current:  # the same loop with the T-current term (a constant flag: unswitched)
                    n_fired = _membrane(
                        b - a, seg_f[s], seg_ref[s], V[a:b], ref[a:b], gw[a:b], gs, num, fired, adapt, noisy,
                        noise_tile, neg_dt, True, h[a:b],
                    )  # fmt: skip
                else:
                    n_fired = _membrane(
                        b - a, seg_f[s], seg_ref[s], V[a:b], ref[a:b], gw[a:b], gs, num, fired, adapt, noisy,
                        noise_tile, neg_dt, False, h[a:b],
                    )  # fmt: skip
                if cursor < force_steps.shape[0] and force_steps[cursor] == t:
                    cursor, n_forced = _force(
                        a, b, t, cursor, force_steps, force_ids, seg_f[s], seg_ref[s], V, ref, gw, fired, adapt
                    )
                    n_fired += n_forced
                if n_fired > 0:
                    count = _propagate(
                        a, b, t, now * g.shape[0] * n, fired, indptr, syn_off, syn_w, buf, spike_steps, spike_ids,
                        count,
                    )  # fmt: skip
        if plastic:
            for c in range(first, count):
                last[spike_ids[c]] = t
            _plasticity(t, last, pl_i, pl_f, pl_state, dt_ms, syn_w)
        if watch.shape[0] > 0:
            _record(traces, t - rec0, rec_codes, watch, V, gw, h, g)
        t += 1
    return t, count


@numba.njit(inline="always", cache=True)
def _record(traces, row, rec_codes, watch, V, gw, h, g):
    """The recorded variables of the watched neurons after a step (``traces[v, row, k]``)."""
    for v in range(rec_codes.shape[0]):
        code = rec_codes[v]
        for k in range(watch.shape[0]):
            i = watch[k]
            if code == _REC_V:
                traces[v, row, k] = V[i]
            elif code == _REC_ADAPT:
                traces[v, row, k] = gw[i]
            elif code == _REC_H:
                traces[v, row, k] = h[i]
            elif code >= 0:
                traces[v, row, k] = g[code, i]


@numba.njit(inline="always", cache=True)
def _drive(a, b, t, n, key, cdf, weight, extra):
    """The Poisson drive of neurons a..b-1 at step t: count·weight into ``extra`` (``engine._Drive``: the
    count is #{k : F_k < u} at SplitMix64's uniform u of counter t·N + i; 3.4 ns per neuron and step)."""
    for j in range(b - a):
        z = key + np.uint64(t * n + a + j + 1) * _GAMMA
        z = (z ^ (z >> np.uint64(30))) * _M1
        z = (z ^ (z >> np.uint64(27))) * _M2
        z = z ^ (z >> np.uint64(31))
        u = np.float64(z >> np.uint64(11)) * 2.0**-53
        k = 0
        for c in range(cdf.shape[0]):  # branch-free count of F_c < u (vectorised)
            k += u > cdf[c]
        extra[j] = np.float64(k) * weight


@numba.njit(inline="always", cache=True, error_model="numpy")
def _conductances(a, b, now, s, V, g, buf, seg_f, seg_E, seg_decay, seg_avg, nmda_k, gs, num, block, kd, extra):
    """1. arrivals (plus the Poisson drive ``extra`` on receptor ``kd``), the sums Σ ḡ_r·B_r (conductance-based
    segments only) and Σ ḡ_r·B_r·E_r (receptor order; ḡ = κ·g, κ = 1 unless the integrator is ``averaged`` or
    the segment is current-based) into gs, num; 3. decay of g."""
    n, m = V.shape[0], b - a
    cuba = seg_f[s, _CUBA] > 0.0
    base = now * g.shape[0] * n
    for j in range(m):
        gs[j] = 0.0
        num[j] = 0.0
    if nmda_k >= 0:
        mgc = seg_f[s, _MGC]
        v_tile = V[a:b]
        for j in range(m):
            block[j] = 1.0 / (1.0 + mgc * _exp(-MG_BLOCK_SLOPE_PER_MV * v_tile[j]))
    for k in range(g.shape[0]):
        e_rev, decay, avg = seg_E[s, k], seg_decay[s, k], seg_avg[s, k]
        gk = g[k, a:b]
        slot = buf[base + k * n + a : base + k * n + b]
        driven = k == kd
        if k == nmda_k:
            for j in range(m):
                x = gk[j] + slot[j]
                if driven:
                    x = x + extra[j]
                slot[j] = 0.0
                gk[j] = x * decay
                x = x * avg * block[j]
                if not cuba:
                    gs[j] = gs[j] + x
                num[j] = num[j] + x * e_rev
        else:
            for j in range(m):
                x = gk[j] + slot[j]
                if driven:
                    x = x + extra[j]
                slot[j] = 0.0
                gk[j] = x * decay
                x = x * avg
                if not cuba:
                    gs[j] = gs[j] + x
                num[j] = num[j] + x * e_rev


@numba.njit(inline="always", cache=True, error_model="numpy")
def _currents(a, b, row, s, now, V, g, buf, seg_f, seg_E, seg_avg, cur_k, cur_lo, cur_hi, synaptic, kd, extra):
    """Recorded currents: Σ κ_r·(g_r + arrivals + drive)·(E_r − V) over each recorded population's neurons in
    a..b-1 (r = AMPA, GABA-A; before the tile's arrivals are added, with V at the start of the step) into
    ``row``; on current-based segments κ_r·I_r·s_r (E_r holds the sign s_r, V enters with factor 0)."""
    n = V.shape[0]
    base = now * g.shape[0] * n
    coef = 0.0 if seg_f[s, _CUBA] > 0.0 else 1.0
    for c in range(cur_lo.shape[0]):
        lo, hi = max(a, cur_lo[c]), min(b, cur_hi[c])
        for col in range(2):
            k = cur_k[col]
            if k < 0 or lo >= hi:
                continue
            e_rev, slot, avg = seg_E[s, k], base + k * n, seg_avg[s, k]
            total = synaptic[c, row, col]
            for i in range(lo, hi):
                x = g[k, i] + buf[slot + i]
                if k == kd:
                    x = x + extra[i - a]
                total += x * avg * (e_rev - V[i] * coef)
            synaptic[c, row, col] = total


@numba.njit(inline="always", cache=True)
def _propagate(a, b, t, base, fired, indptr, syn_off, syn_w, buf, spike_steps, spike_ids, count):
    """4. record the tile's spikes; 5. add each synapse's weight to slot (t + d) mod S of the buffer.

    ``syn_off`` holds d·R·N + r·N + post, so the target is base + syn_off wrapped once (base = (t mod S)·R·N).
    """
    size = buf.shape[0]
    for j in range(b - a):
        if fired[j]:
            i = a + j
            spike_steps[count] = t
            spike_ids[count] = i
            count += 1
            for q in range(indptr[i], indptr[i + 1]):
                k = base + syn_off[q]
                if k >= size:
                    k -= size
                buf[k] += syn_w[q]
    return count


@numba.njit(inline="always", cache=True, error_model="numpy")
def _membrane(m, f, ref_steps, V, ref, gw, gs, num, fired, adapt, noisy, noise, neg_dt, t_current, h):
    """2. membrane (with the T-current and its gate h when ``t_current``), 3. adaptation decay, 4. spikes
    of one tile (views); returns the spike count."""
    g_leak, glel, c_m = f[_GL], f[_GLEL], f[_C]
    v_th, v_reset, noise_scale = f[_VTH], f[_VRESET], f[_NOISE]
    adapt_b, adapt_e, adapt_decay, adapt_avg = f[_ADAPT_B], f[_ADAPT_E], f[_ADAPT_DECAY], f[_AVG_W]
    g_t, e_t, v_h, h_minus, h_plus = f[_GT], f[_ET], f[_VH], f[_H_MINUS], f[_H_PLUS]
    n_fired = 0
    for j in range(m):
        g_tot = g_leak + gs[j]
        numer = glel + num[j]
        if adapt:
            gw_avg = gw[j] * adapt_avg
            g_tot = g_tot + gw_avg
            numer = numer + gw_avg * adapt_e
        if t_current:
            h_j = h[j]
            if V[j] > v_h:
                g_tot = g_tot + g_t * h_j
                numer = numer + g_t * h_j * e_t
                h[j] = h_j * h_minus
            else:
                h[j] = 1.0 - (1.0 - h_j) * h_plus
        v_inf = numer / g_tot
        v_new = v_inf + (V[j] - v_inf) * _exp(neg_dt * g_tot / c_m)
        if noisy:
            v_new = v_new + noise_scale * noise[j]
        r = ref[j]
        active = r == 0
        spike = active & (v_new >= v_th)
        V[j] = v_reset if spike else (v_new if active else V[j])
        ref[j] = ref_steps if spike else (r if active else r - 1)
        if adapt:
            gw[j] = gw[j] * adapt_decay + (adapt_b if spike else 0.0)
        fired[j] = spike
        n_fired += np.int64(spike)
    return n_fired


@numba.njit(inline="always", cache=True)
def _force(a, b, t, cursor, force_steps, force_ids, f, ref_steps, V, ref, gw, fired, adapt):
    """4. the forced (source) spikes of step t among neurons a..b-1, reset as threshold spikes are;
    returns (next cursor, new spikes)."""
    n_new = 0
    while cursor < force_steps.shape[0] and force_steps[cursor] == t and force_ids[cursor] < b:
        i = force_ids[cursor]
        if not fired[i - a]:
            fired[i - a] = True
            V[i] = f[_VRESET]
            ref[i] = ref_steps
            if adapt:
                gw[i] = gw[i] + f[_ADAPT_B]
            n_new += 1
        cursor += 1
    return cursor, n_new


@numba.njit(cache=True, error_model="numpy")
def _plasticity(t, last, pl_i, pl_f, state, dt_ms, syn_w):
    """6. traces decay, weights change with the traces before this step's spikes, traces take the spikes
    (``engine._Plasticity.step`` per synapse, same expressions and order); weights clipped."""
    dt_s = dt_ms / 1000.0
    for q in range(pl_i.shape[1]):
        pre = 1.0 if last[pl_i[_P_PRE, q]] == t else 0.0
        post = 1.0 if last[pl_i[_P_POST, q]] == t else 0.0
        x = state[0, q] * pl_f[_P_DECAY_X, q]
        y = state[1, q] * pl_f[_P_DECAY_Y, q]
        change = pl_f[_P_A_PLUS, q] * x * post - pl_f[_P_A_MINUS, q] * y * pre
        x = x + pre
        y = y + post
        theta = state[2, q]
        eta = pl_f[_P_ETA, q]
        if eta > 0.0:
            rate_x, rate_y = x * pl_f[_P_RATE_X, q], y * pl_f[_P_RATE_Y, q]
            theta = theta + (rate_y**2 / pl_f[_P_TARGET, q] - theta) * dt_ms / pl_f[_P_TAU_THETA, q]
            change = change + eta * dt_s * rate_x * rate_y * (rate_y - theta)
        state[0, q], state[1, q], state[2, q] = x, y, theta
        k = pl_i[_P_INDEX, q]
        syn_w[k] = min(max(syn_w[k] + change, pl_f[_P_WMIN, q]), pl_f[_P_WMAX, q])


def _segments(params: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) of the runs of neurons whose parameters are all equal."""
    rows = np.vstack([np.atleast_2d(v).astype(np.float64) for k, v in params.items() if not k.startswith("V0")])
    change = np.flatnonzero((rows[:, 1:] != rows[:, :-1]).any(axis=0)) + 1
    lo = np.concatenate([[0], change]).astype(np.int64)
    hi = np.concatenate([change, [rows.shape[1]]]).astype(np.int64)
    return lo, hi


def _prepare(compiled: Compiled, averaged: bool = False) -> dict:
    """Kernel arguments that do not change during a run (segments, used receptors, synapses, plasticity)."""
    p = compiled.params
    unknown = set(p) - _KNOWN_PARAMS
    if unknown:
        raise NotImplementedError(f"The numba backend does not implement neuron parameter(s) {sorted(unknown)}.")
    n = len(p["C"])
    driven = p["drive_receptor"] >= 0
    # receptors some synapse or drive uses, increasing: the torch loop's summation order
    used = np.union1d(np.unique(compiled.syn_receptor), p["drive_receptor"][driven]).astype(np.int64)
    lo, hi = _segments(p)
    seg_f = np.empty((len(lo), 18))
    for column, values in (
        (_C, p["C"]),
        (_GL, p["g_L"]),
        (_GLEL, p["g_L"] * p["E_L"] + p["I_bias"]),
        (_VTH, p["V_th"]),
        (_VRESET, p["V_reset"]),
        (_MGC, p["mg"] / MG_BLOCK_MM),
        (_ADAPT_B, p["adapt_b"]),
        (_ADAPT_E, p["adapt_E"]),
        (_ADAPT_DECAY, p["adapt_decay"]),
        (_NOISE, p["noise_scale"]),
        (_GT, p["g_T"]),
        (_ET, p["E_T"]),
        (_VH, p["V_h"]),
        (_H_MINUS, p["h_decay_minus"]),
        (_H_PLUS, p["h_decay_plus"]),
        (_AVG_W, p["adapt_avg_factor"] if averaged else np.ones(n)),
        (_CUBA, p["cuba"]),
        (_DRIVE_W, p["drive_weight"]),
    ):
        seg_f[:, column] = values[lo]
    stride = len(used) * n
    compact = np.full(len(RECEPTORS), -1, dtype=np.int64)
    compact[used] = np.arange(len(used))
    avg = np.where(p["cuba"] > 0, p["avg_factor"], p["avg_factor"] if averaged else 1.0)
    rows, drive_cdf = poisson_cdf_table(p["drive_lambda"][driven])
    seg_receptor = p["drive_receptor"][lo]
    return {
        "n_slots": int(compiled.n_slots),
        "seg_lo": lo,
        "seg_hi": hi,
        "seg_f": seg_f,
        "seg_ref": np.ascontiguousarray(p["ref_steps"][lo], dtype=np.int32),
        "seg_E": np.ascontiguousarray(p["E_rev"][used][:, lo].T, dtype=np.float64),
        "seg_decay": np.ascontiguousarray(p["decay"][used][:, lo].T, dtype=np.float64),
        "seg_avg": np.ascontiguousarray(avg[used][:, lo].T, dtype=np.float64),
        "nmda_k": int(compact[_NMDA]),
        "adapt": bool((p["adapt_b"] > 0).any()),
        "neg_dt": -float(compiled.dt_ms),
        "indptr": np.ascontiguousarray(compiled.indptr, dtype=np.int64),
        "syn_off": _offsets(compiled, stride, compact, n),
        "cur_k": compact[[_AMPA, _GABA_A]],
        "seg_drive_k": np.where(seg_receptor >= 0, compact[np.maximum(seg_receptor, 0)], -1).astype(np.int64),
        "seg_drive_row": np.searchsorted(rows, p["drive_lambda"][lo]).clip(0, max(len(rows) - 1, 0)).astype(np.int64),
        "drive_cdf": drive_cdf,
        "dt_ms": float(compiled.dt_ms),
        **_plastic_tables(compiled.plastic),
        "used": used,
        "compact": compact,
    }


def _plastic_tables(plastic: dict[str, np.ndarray] | None) -> dict[str, np.ndarray]:
    """``pl_i`` (3, P) int64, ``pl_f`` (11, P) and the state x, y, θ ``pl_state`` (3, P) of the P plastic
    synapses (the initial state of ``engine._Plasticity``)."""
    if plastic is None:
        return {"pl_i": np.zeros((3, 0), np.int64), "pl_f": np.zeros((11, 0)), "pl_state": np.zeros((3, 0))}
    q = plastic
    rows = {
        _P_A_PLUS: q["a_plus"],
        _P_A_MINUS: q["a_minus"],
        _P_ETA: q["eta"],
        _P_DECAY_X: q["decay_x"],
        _P_DECAY_Y: q["decay_y"],
        _P_RATE_X: q["rate_x"],
        _P_RATE_Y: q["rate_y"],
        _P_TARGET: q["target"],
        _P_TAU_THETA: q["tau_theta"],
        _P_WMIN: q["w_min"],
        _P_WMAX: q["w_max"],
    }
    pl_f = np.ascontiguousarray(np.stack([rows[k] for k in range(len(rows))]), dtype=np.float64)
    pl_i = np.ascontiguousarray(np.stack([q["index"], q["pre"], q["post"]]), dtype=np.int64)
    state = np.zeros((3, pl_i.shape[1]))
    state[2] = np.where(q["eta"] > 0, q["target"], 0.0)
    return {"pl_i": pl_i, "pl_f": pl_f, "pl_state": state}


def _offsets(compiled: Compiled, stride: int, compact: np.ndarray, n: int, block: int = 1 << 24) -> np.ndarray:
    """Per synapse d·stride + r·N + post (d: delay steps, r: stored receptor), computed in blocks; int32
    where the ring buffer allows it (less memory traffic per synapse), else int64."""
    size = len(compiled.syn_post)
    small = (compiled.n_slots - 1) * stride + stride < 2**31
    out = np.empty(size, dtype=np.int32 if small else np.int64)
    for start in range(0, size, block):
        sl = slice(start, min(start + block, size))
        delay = compiled.syn_delay[sl].astype(np.int64)
        out[sl] = delay * stride + compact[compiled.syn_receptor[sl]] * n + compiled.syn_post[sl]
    return out


def _check_device(device: torch.device | str) -> None:
    kind = torch.device(device).type
    if kind != "cpu":
        raise ValueError(
            f"Invalid value for 'device': the numba backend runs on the CPU only, got {str(device)!r}; "
            "use backend='torch' for other devices."
        )


_NO_SPIKES = np.zeros(0, np.int64)
#: Kernel arguments after the per-call ones, in the kernel's order: the state, then the constants.
_STATE_ARGS = ("V", "ref", "g", "gw", "h", "buf", "syn_w", "pl_state", "last")
_CONST_ARGS = (
    "n_slots seg_lo seg_hi seg_f seg_ref seg_E seg_decay seg_avg nmda_k adapt neg_dt noisy indptr syn_off cur_k "
    "cur_lo cur_hi pl_i pl_f dt_ms watch rec_codes seg_drive_k seg_drive_row drive_cdf"
).split()


def _sorted_spikes(steps: list[np.ndarray], ids: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(steps, neurons) concatenated and sorted by step, then neuron."""
    if not steps:
        return _NO_SPIKES, _NO_SPIKES
    steps, ids = np.concatenate(steps).astype(np.int64), np.concatenate(ids).astype(np.int64)
    order = np.lexsort((ids, steps))
    return np.ascontiguousarray(steps[order]), np.ascontiguousarray(ids[order])


def _in_range(spikes: tuple[np.ndarray, np.ndarray], t0: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
    lo, hi = np.searchsorted(spikes[0], (t0, stop))
    return spikes[0][lo:hi], spikes[1][lo:hi]


class NumbaEngine:
    """The state of a network in NumPy arrays, advanced by the compiled kernel (the interface of
    ``engine._TorchEngine``: ``t``, ``advance``, ``weights``, ``state``, ``load``).

    Conductances and the ring buffer hold only the receptors that some synapse uses (``state`` and
    ``load`` convert to and from all of ``RECEPTORS``).
    """

    def __init__(
        self,
        compiled: Compiled,
        randomness: _Randomness,
        *,
        watch: np.ndarray,
        record_vars=("V",),
        currents: dict[str, slice] | None = None,
        integrator: str = "exponential_euler",
    ) -> None:
        net = _prepare(compiled, averaged=integrator == "averaged")
        self.used, compact = net.pop("used"), net.pop("compact")
        self.compiled, self.randomness, self.t = compiled, randomness, 0
        n, n_rec = len(compiled.params["C"]), len(self.used)
        self.n = n
        slices = list((currents or {}).values())
        self.arrays = {
            "V": np.array(randomness.V0, dtype=np.float64),
            "ref": np.zeros(n, dtype=np.int32),
            "g": np.zeros((n_rec, n)),
            "gw": np.zeros(n),
            "h": np.array(compiled.params["h0"], dtype=np.float64),
            "buf": np.zeros(net["n_slots"] * n_rec * n),
            # plasticity changes the weights: a copy (``compiled`` keeps its own); otherwise shared, read only
            "syn_w": compiled.syn_weight if compiled.plastic is None else np.array(compiled.syn_weight, np.float64),
            "pl_state": net.pop("pl_state"),
            "last": np.full(n, -1, dtype=np.int64),  # step of each neuron's latest spike (for plasticity)
            **net,
            "noisy": randomness.noisy,
            "cur_lo": np.array([sl.start for sl in slices], dtype=np.int64),
            "cur_hi": np.array([sl.stop for sl in slices], dtype=np.int64),
            "watch": np.ascontiguousarray(watch, dtype=np.int64),
            "rec_codes": np.array([_record_code(v, compact) for v in record_vars], dtype=np.int64),
        }
        self.args = tuple(self.arrays[k] for k in (*_STATE_ARGS, *_CONST_ARGS))
        self.n_currents, self.n_vars = len(slices), len(record_vars)
        capacity = max(_MIN_SPIKE_CAPACITY, 4 * n)
        self.spike_steps, self.spike_ids = np.empty(capacity, np.int64), np.empty(capacity, np.int64)
        self.no_noise = np.zeros((1, 0))
        self.chunk_key, self.chunk_spikes = None, (_NO_SPIKES, _NO_SPIKES)

    def advance(self, n_steps: int, inputs: list, progress: Callable[[int], object] | None):
        """Steps t .. t + n_steps − 1: (spike steps, spike ids, traces (n_vars, n_steps, n_watch),
        currents (n_currents, n_steps, 2)); spike steps on the simulator's clock."""
        t0 = t = self.t
        end = t0 + n_steps
        traces = np.zeros((self.n_vars, n_steps, len(self.arrays["watch"])))
        synaptic = np.zeros((self.n_currents, n_steps, 2))
        extra = self._input_spikes(inputs, t0)
        count = 0
        while t < end:
            start, stop, noise = self._chunk(t)
            stop = min(stop, end)
            forced = self.chunk_spikes if extra is None else self._merged(extra, t, stop)
            noise = self.no_noise if noise is None else noise
            first = t
            while t < stop:
                t, count = _steps(
                    t, stop, t0, start, noise, *forced, traces, synaptic, self.spike_steps, self.spike_ids, count,
                    np.uint64(self.randomness.drive_key), *self.args,
                )  # fmt: skip
                if t < stop:
                    capacity = max(2 * len(self.spike_steps), count + self.n)
                    self.spike_steps, self.spike_ids = (
                        _grown(self.spike_steps, capacity),
                        _grown(self.spike_ids, capacity),
                    )
            if progress is not None:
                progress(stop - first)
        self.t = end
        return self.spike_steps[:count].copy(), self.spike_ids[:count].copy(), traces, synaptic

    def _chunk(self, t: int) -> tuple[int, int, np.ndarray | None]:
        """(start, stop, noise) of the pool chunk holding step t; its forced spikes (Poisson and given,
        sorted by step then neuron) in ``chunk_spikes``."""
        start, stop, noise, poisson = self.randomness.chunk(t)
        if self.chunk_key != (start, stop):
            steps, ids = [], []
            if poisson is not None:
                rows, cols = np.nonzero(poisson)
                steps.append(rows + start)
                ids.append(self.randomness.poisson_idx[cols])
            if self.compiled.schedule is not None:
                given = _in_range(self.compiled.schedule, start, stop)
                steps.append(given[0])
                ids.append(given[1])
            self.chunk_spikes, self.chunk_key = _sorted_spikes(steps, ids), (start, stop)
        return start, stop, noise

    def _input_spikes(self, inputs: list, t0: int) -> tuple[np.ndarray, np.ndarray] | None:
        """(steps, neurons) of the forced input spikes, sorted; None without inputs."""
        if not inputs:
            return None
        steps, ids = [], []
        for offset, values in inputs:
            array = values.cpu().numpy() if isinstance(values, torch.Tensor) else values
            rows, cols = np.nonzero(array)
            steps.append(rows + t0)
            ids.append(cols + offset)
        return _sorted_spikes(steps, ids)

    def _merged(self, extra, t: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        chunk, given = _in_range(self.chunk_spikes, t, stop), _in_range(extra, t, stop)
        return _sorted_spikes([chunk[0], given[0]], [chunk[1], given[1]])

    def weights(self) -> np.ndarray:
        return self.arrays["syn_w"]

    def state(self) -> dict[str, np.ndarray]:
        """The state in the layout of ``Simulator.state_dict`` (all receptors)."""
        a, n, R = self.arrays, self.n, len(RECEPTORS)
        g = np.zeros((R, n))
        g[self.used] = a["g"]
        buffer = np.zeros((a["n_slots"], R, n))
        buffer[:, self.used] = a["buf"].reshape(a["n_slots"], len(self.used), n)
        return {
            "V": a["V"].copy(), "ref": a["ref"].astype(np.int64), "g": g, "g_adapt": a["gw"].copy(),
            "h": a["h"].copy(), "buffer": buffer, "weights": a["syn_w"].copy(), "plasticity_x": a["pl_state"][0].copy(),
            "plasticity_y": a["pl_state"][1].copy(), "plasticity_theta": a["pl_state"][2].copy(),
        }  # fmt: skip

    def load(self, t: int, state) -> None:
        """Copy ``state`` (``Simulator.state_dict`` layout) into the kernel's arrays."""
        a, unused = self.arrays, np.setdiff1d(np.arange(len(RECEPTORS)), self.used)
        g, buffer = np.asarray(state["g"]), np.asarray(state["buffer"])
        if np.any(g[unused]) or np.any(buffer[:, unused]):
            names = [RECEPTORS[r] for r in unused]
            raise ValueError(f"Invalid value for state['g'] / state['buffer']: conductance on {names}, receptors that "
                             "no synapse of this network uses (a state of another network?).")  # fmt: skip
        a["V"][:], a["ref"][:], a["gw"][:], a["h"][:] = state["V"], state["ref"], state["g_adapt"], state["h"]
        a["g"][:] = g[self.used]
        a["buf"][:] = buffer[:, self.used].reshape(-1)
        a["syn_w"] = np.array(state["weights"], dtype=np.float64)  # never writes into ``compiled``
        for row, key in enumerate(("plasticity_x", "plasticity_y", "plasticity_theta")):
            a["pl_state"][row] = state[key]
        a["last"][:] = -1
        self.args = tuple(a[k] for k in (*_STATE_ARGS, *_CONST_ARGS))
        self.t, self.chunk_key = t, None


def _record_code(var: str, compact: np.ndarray) -> int:
    """The kernel's code of a recorded variable (``engine.STATE_VARS``)."""
    codes = {"V": _REC_V, "g_adapt": _REC_ADAPT, "h": _REC_H}
    return codes[var] if var in codes else int(compact[RECEPTORS.index(var[2:])])


def run(
    compiled: Compiled,
    n_steps: int,
    randomness: _Randomness,
    record: dict[str, np.ndarray],
    device: torch.device,
    currents: dict[str, slice] | None = None,
    progress: Callable[[int], object] | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Run ``n_steps`` of ``compiled`` from its initial state on the CPU (the signature and results of
    ``engine._torch_run``).

    Returns
    -------
    spike_steps, spike_ids : (n_spikes,) int64
        In time order, within a step in increasing neuron index.
    traces : (n_steps, n_recorded) float64
        V (mV) after each step of the neurons in ``record`` (concatenated in its order).
    weights : (n_synapses,) float64
        Final weights (nS) in compiled synapse order (changed by plasticity only).
    synaptic : (len(currents), n_steps, 2) float64
        Summed AMPA and GABA-A currents (pA) of each population in ``currents`` at each step.
    """
    _check_device(device)
    watch = np.concatenate([np.asarray(v, dtype=np.int64) for v in record.values()]) if record else _NO_SPIKES
    engine = NumbaEngine(compiled, randomness, watch=watch, currents=currents)
    randomness.horizon = n_steps
    steps, ids, traces, synaptic = engine.advance(n_steps, [], progress)
    return steps, ids, traces[0], engine.weights(), synaptic


def _grown(values: np.ndarray, capacity: int) -> np.ndarray:
    out = np.empty(capacity, dtype=values.dtype)
    out[: len(values)] = values
    return out


def compile_kernel() -> dict:
    """Compile (or load from numba's cache) the step kernel; returns {"seconds", "cache_hit"}.

    Runs two steps of a small network with every feature switched on (noise, adaptation, NMDA,
    T-current, given and Poisson sources, inputs, STDP and BCM, current and state recording), so that
    the first run of a real network pays no compilation.
    """
    from thalia.spiking.connectivity import Explicit, OneToOne
    from thalia.spiking.engine import Simulator
    from thalia.spiking.network import Network
    from thalia.spiking.neurons import LIF
    from thalia.spiking.plasticity import BCM, STDP

    net = Network()
    net.add_population("a", 2, LIF(noise_mV=1.0, adapt_b_nS=1.0, g_T_nS=1.0))
    net.add_spike_source("s", 2, times_ms=[[0.0], []], rate_hz=10.0)
    net.connect("a", "a", Explicit((0, 1), (1, 0)), weight_nS=1.0, receptor="nmda", delay_ms=0.1, plasticity=STDP())
    net.connect("s", "a", OneToOne(), weight_nS=1.0, delay_ms=0.1, plasticity=BCM())
    start = time.perf_counter()
    hits = sum(_steps.stats.cache_hits.values())
    simulator = Simulator(
        net, dt_ms=0.1, backend="numba", record_v={"a": [0]}, record_currents=["a"], record_vars=("V", "g_nmda")
    )
    simulator.run(2, inputs={"s": np.array([True, False])})
    return {"seconds": time.perf_counter() - start, "cache_hit": sum(_steps.stats.cache_hits.values()) > hits}
