"""The torch step with static shapes, replayed from CUDA graphs (``Simulator(backend="graph")``).

A step of :class:`~thalia.spiking.engine._TorchEngine` has shapes that depend on its spikes (the list of
spiking neurons and of their synapses) and host logic (the step number, the pool of random draws).
:class:`_GraphEngine` runs the same step (the same functions ``_arrive``, ``_drive_add``, ``_membrane``,
``_reset``) with fixed shapes:

* the spiking neurons: ``torch.nonzero_static`` into ``spike_capacity`` ids, padded with N (a neuron
  without synapses);
* their synapses: the CSR ranges expanded into ``synapse_capacity`` entries (a search over the
  cumulative out-degrees); unused entries add 0 nS;
* the step t (ring-buffer slot, drive counter) is a device tensor, and so is the drive's key.

``GRAPH_STEPS`` such steps are captured once in a ``torch.cuda.CUDAGraph`` and replayed (on the CPU the
same static steps run without capture, which the tests check). A replay writes the spike ids of its
steps into a device buffer that is read once per chunk, with the traces and currents.

Spikes are never dropped: every step records how many neurons spiked and how many synapses they have.
Where a chunk needed more than the capacities, its state is restored from a copy taken before the replay
and the chunk runs again on the exact dynamic path of ``_TorchEngine``; the capacities grow after two
such chunks in a row (1.5 × the need, rounded up to a power of two) and shrink after ``_WINDOW`` chunks
that used at most a quarter of them; the graph is then captured anew.

Steps with host logic run on the dynamic path: runs with ``inputs``, chunks that hold given spikes of a
spike source, chunks that would cross a chunk of the pool of noise and Poisson draws, and the last steps
of a run (fewer than ``GRAPH_STEPS``). With Triton present on a CUDA device, the update and the
propagation are compiled by ``torch.compile`` (a few fused kernels per step instead of ~100 small ones).
"""

from __future__ import annotations

import importlib.util
import math
from collections import deque

import torch

from thalia.spiking.engine import NOISE_CHUNK, _arrive, _drive_add, _membrane, _reset, _TorchEngine

#: Steps per captured graph (divides ``NOISE_CHUNK``, so that chunks align with the pool of draws).
GRAPH_STEPS = 100
#: Chunks over which the capacities' use is watched before they shrink.
_WINDOW = 4
#: Compile the update and the propagation with ``torch.compile``: None (default) on a CUDA device where
#: Triton is installed, True always (on the CPU through Inductor's C++ code), False never.
COMPILE: bool | None = None
_COMPILED: dict = {}


def _graph_update(c, flags, groups, key, t, V, g, g_w, ref, h, buffer, noise_row, poisson_idx, poisson_row, currents):
    """Steps 1–4 of step t (0-d tensor) in place on the state (V, g, g_w, ref, h, buffer): (spikes,
    currents (n, 2) or None)."""
    _arrive(g, buffer, t)
    if groups:
        _drive_add(groups, g, key, t)
    V_new, ref_new, h_new, spike, synaptic = _membrane(c, flags, V, g, g_w, ref, h, noise_row, currents)
    if poisson_row is not None:
        spike[poisson_idx] |= poisson_row
    V_new, ref_new = _reset(c, V_new, ref_new, g_w, spike)
    V.copy_(V_new)
    ref.copy_(ref_new)
    if flags[1]:
        h.copy_(h_new)
    return spike, synaptic


def _propagate_static(indptr, delay, target, weight, buffer, spike, t, j, capacity: int, n_slots: int):
    """Step 5 with fixed shapes: (ids (capacity,) padded with N, (spikes, synapses needed)). ``indptr``:
    N + 2 entries (id N has no synapses); ``j``: arange(synapse capacity)."""
    n, size = spike.shape[0], buffer.shape[0]
    ids = torch.nonzero_static(spike, size=capacity, fill_value=n).squeeze(1)
    starts = indptr[ids]
    counts = indptr[ids + 1] - starts
    cum = torch.cumsum(counts, 0)
    owner = torch.searchsorted(cum, j, right=True).clamp_(max=capacity - 1)
    valid = j < cum[-1]
    syn = torch.where(valid, starts[owner] + j - (cum[owner] - counts[owner]), 0)
    slot = (delay[syn].to(torch.int64) + t) % n_slots
    flat = torch.where(valid, slot * (size // n_slots) + target[syn], j % size)  # unused: 0 nS, spread out
    buffer.index_add_(0, flat, torch.where(valid, weight[syn], 0.0))
    return ids, torch.stack((spike.sum(), cum[-1]))


def _compiled(fn, dynamic: bool):
    """``torch.compile`` of a module-level step function (one wrapper each, shared by every engine)."""
    if fn not in _COMPILED:
        _COMPILED[fn] = torch.compile(fn, fullgraph=True, dynamic=dynamic)
    return _COMPILED[fn]


def _pow2(x: float) -> int:
    return 1 << max(0, math.ceil(math.log2(max(x, 1.0))))


class _GraphEngine(_TorchEngine):
    """``_TorchEngine`` with chunks of ``GRAPH_STEPS`` static-shape steps, captured in CUDA graphs on a GPU.

    ``compile_step`` says whether ``torch.compile`` compiled the step (``COMPILE``). ``stats`` counts graph
    chunks, steps on the dynamic path, overflows and captures.
    """

    @torch.no_grad()
    def __init__(self, compiled, randomness, device, dtype=torch.float64, **options):
        super().__init__(compiled, randomness, device, dtype, **options)
        n, K = self.n, GRAPH_STEPS
        self.use_graph = self.device.type == "cuda"
        has_triton = importlib.util.find_spec("triton") is not None
        self.compile_step = (self.use_graph and has_triton) if COMPILE is None else COMPILE
        self._update = _compiled(_graph_update, False) if self.compile_step else _graph_update
        self._spread = _compiled(_propagate_static, True) if self.compile_step else _propagate_static
        self.indptr_pad = torch.cat([self.indptr, self.indptr[-1:]])
        self.spike_capacity = _pow2(max(64, n / 256))
        self.synapse_capacity = _pow2(self.spike_capacity * len(compiled.syn_post) / n)
        self.groups = self.drive.groups if self.drive is not None else []
        self.t_vec = torch.zeros(K, dtype=torch.int64, device=device)
        self.k_range = torch.arange(K, device=device)
        self.key = torch.zeros((), dtype=torch.int64, device=device)
        self.noise_buf = torch.zeros(K, n, dtype=dtype, device=device) if randomness.noisy else None
        n_poisson = len(randomness.poisson_idx)
        self.poisson_buf = torch.zeros(K, n_poisson, dtype=torch.bool, device=device) if n_poisson else None
        self.need = torch.zeros(K, 2, dtype=torch.int64, device=device)
        self.traces_buf = torch.zeros(len(self.record_vars), K, len(self.watch), dtype=dtype, device=device)
        self.synaptic_buf = torch.zeros(len(self.currents), K, 2, dtype=dtype, device=device)
        self.graph: torch.cuda.CUDAGraph | None = None
        self.history: deque = deque(maxlen=_WINDOW)
        self.overflowed = False
        self.static: dict[tuple[int, str], torch.Tensor] = {}
        self.snapshot: dict[tuple[int, str], torch.Tensor] = {}
        self.stats = {"graph_chunks": 0, "dynamic_steps": 0, "overflows": 0, "captures": 0}
        self._resize()

    def _resize(self) -> None:
        """(Re)allocate the buffers of the capacities; the graph is captured anew before its next replay."""
        self.rec_ids = torch.zeros(GRAPH_STEPS, self.spike_capacity, dtype=torch.int64, device=self.device)
        self.j = torch.arange(self.synapse_capacity, device=self.device)
        self.graph = None

    def _state(self) -> list[tuple[object, str]]:
        """(owner, attribute) of every state tensor that a step changes."""
        names = [(self, name) for name in ("V", "g", "g_w", "ref", "h", "buffer")]
        if self.plastic is not None:
            names += [(self, "weight")] + [(self.plastic, name) for name in ("x", "y", "theta")]
        return names

    def _bind(self) -> None:
        """Put the current state into the tensors that the graph reads (the dynamic path rebinds them)."""
        for owner, name in self._state():
            key, value = (id(owner), name), getattr(owner, name)
            static = self.static.setdefault(key, value)
            if value is not static:
                static.copy_(value)
                setattr(owner, name, static)

    def _save(self) -> None:
        for owner, name in self._state():
            key = (id(owner), name)
            if key not in self.snapshot:
                self.snapshot[key] = torch.empty_like(self.static[key])
            self.snapshot[key].copy_(self.static[key])

    def _restore(self) -> None:
        for owner, name in self._state():
            self.static[(id(owner), name)].copy_(self.snapshot[(id(owner), name)])

    def _run(self, t0, n_steps, traces, synaptic, forced, spikes, progress) -> None:
        if forced is not None:
            self.stats["dynamic_steps"] += n_steps
            return super()._run(t0, n_steps, traces, synaptic, forced, spikes, progress)
        k = 0
        while k < n_steps:
            if n_steps - k >= GRAPH_STEPS and self._graph_ok(t0 + k):
                if progress is not None:
                    ticks = (k + GRAPH_STEPS - 1) // NOISE_CHUNK - (k - 1) // NOISE_CHUNK if k else 0
                    progress(NOISE_CHUNK * ticks)
                self._replay(t0, k, traces, synaptic, spikes)
                k += GRAPH_STEPS
            else:
                self._steps(t0, k, k + 1, traces, synaptic, None, spikes, progress)
                self.stats["dynamic_steps"] += 1
                k += 1

    def _graph_ok(self, t: int) -> bool:
        """Whether steps t .. t + GRAPH_STEPS − 1 hold no given spikes and lie in one chunk of the pool."""
        if self.cursor < len(self.schedule_steps) and self.schedule_steps[self.cursor] < t + GRAPH_STEPS:
            return False
        if self.noise_buf is None and self.poisson_buf is None:
            return True
        _, stop, _, _ = self.randomness.chunk(t)
        return t + GRAPH_STEPS <= stop

    def _body(self) -> None:
        """The GRAPH_STEPS static steps (what the graph holds)."""
        for k in range(GRAPH_STEPS):
            t = self.t_vec[k]
            noise = None if self.noise_buf is None else self.noise_buf[k]
            poisson = None if self.poisson_buf is None else self.poisson_buf[k]
            spike, currents = self._update(
                self.c, self.flags, self.groups, self.key, t, self.V, self.g, self.g_w, self.ref, self.h,
                self.buffer, noise, self.poisson_idx, poisson, self.currents,
            )  # fmt: skip
            if len(self.weight):
                ids, need = self._spread(
                    self.indptr_pad, self.delay, self.target, self.weight, self.buffer, spike, t, self.j,
                    self.spike_capacity, self.S,
                )  # fmt: skip
            else:
                ids = torch.nonzero_static(spike, size=self.spike_capacity, fill_value=self.n).squeeze(1)
                need = torch.stack((spike.sum(), torch.zeros_like(spike.sum())))
            self.rec_ids[k].copy_(ids)
            self.need[k].copy_(need)
            for v, var in enumerate(self.record_vars):
                self.traces_buf[v, k] = self._variable(var)
            if currents is not None:
                self.synaptic_buf[:, k] = currents
            if self.plastic is not None:
                self.plastic.step(spike, self.weight)

    def _capture(self) -> None:
        """Run the body once (compiles, allocates; the state is restored after) and capture it."""
        self._save()
        stream = torch.cuda.Stream(self.device)
        stream.wait_stream(torch.cuda.current_stream(self.device))
        with torch.cuda.stream(stream):
            self._body()
        torch.cuda.current_stream(self.device).wait_stream(stream)
        self._restore()
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._body()
        self.stats["captures"] += 1

    def _replay(self, t0: int, k: int, traces, synaptic, spikes: tuple[list, list]) -> None:
        """Steps t0 + k .. t0 + k + GRAPH_STEPS − 1 from the graph (or again on the dynamic path)."""
        t, K = t0 + k, GRAPH_STEPS
        self._bind()
        if self.use_graph and self.graph is None:
            self._capture()
        torch.add(self.k_range, t, out=self.t_vec)
        self.key.fill_(self.randomness.drive_key)
        if self.noise_buf is not None or self.poisson_buf is not None:
            start, noise, poisson = self._chunk(t)
            if noise is not None:
                self.noise_buf.copy_(noise[t - start : t - start + K])
            if poisson is not None:
                self.poisson_buf.copy_(poisson[t - start : t - start + K])
        self._save()
        if self.use_graph:
            self.graph.replay()
        else:
            self._body()
        n_spikes, n_synapses = self.need.amax(0).tolist()
        if n_spikes > self.spike_capacity or n_synapses > self.synapse_capacity:
            self._redo(t0, k, traces, synaptic, spikes)
            return
        self.stats["graph_chunks"] += 1
        self.overflowed = False
        traces[:, k : k + K] = self.traces_buf
        synaptic[:, k : k + K] = self.synaptic_buf
        rows, cols = (self.rec_ids < self.n).nonzero(as_tuple=True)
        spikes[0].append(rows + t)
        spikes[1].append(self.rec_ids[rows, cols])
        self.history.append((n_spikes, n_synapses))
        if len(self.history) == _WINDOW:
            self._fit([max(h[i] for h in self.history) for i in (0, 1)], shrink=True)

    def _redo(self, t0: int, k: int, traces, synaptic, spikes: tuple[list, list]) -> None:
        """A chunk that overflowed: restore its start and run it on the dynamic path."""
        self._restore()
        before = len(spikes[0])
        self._steps(t0, k, k + GRAPH_STEPS, traces, synaptic, None, spikes, None)
        self.stats["overflows"] += 1
        self.stats["dynamic_steps"] += GRAPH_STEPS
        steps = torch.cat(spikes[0][before:]) - (t0 + k) if len(spikes[0]) > before else self.k_range[:0]
        ids = torch.cat(spikes[1][before:]) if len(spikes[1]) > before else self.k_range[:0]
        degree = self.indptr[ids + 1] - self.indptr[ids]
        per_step = torch.zeros(2, GRAPH_STEPS, dtype=torch.int64, device=self.device)
        per_step[0].index_add_(0, steps, torch.ones_like(steps))
        per_step[1].index_add_(0, steps, degree)
        if self.overflowed:  # two in a row: not a transient
            self._fit(per_step.amax(1).tolist(), shrink=False)
        self.overflowed = True
        self.history.clear()

    def _fit(self, need: list[int], *, shrink: bool) -> None:
        """Capacities of 1.5 × ``need`` (powers of two): grown, or shrunk where they are 2× too large."""
        spikes, synapses = (_pow2(1.5 * x) for x in need)
        spikes, synapses = max(spikes, 64), max(synapses, 64)
        if shrink:
            spikes = self.spike_capacity if 2 * spikes > self.spike_capacity else spikes
            synapses = self.synapse_capacity if 2 * synapses > self.synapse_capacity else synapses
        else:
            spikes, synapses = max(spikes, self.spike_capacity), max(synapses, self.synapse_capacity)
        if (spikes, synapses) != (self.spike_capacity, self.synapse_capacity):
            self.spike_capacity, self.synapse_capacity = spikes, synapses
            self.history.clear()
            self._resize()

    def load(self, t: int, state) -> None:
        super().load(t, state)
        self.history.clear()
        self.overflowed = False
