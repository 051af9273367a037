"""Chunked SSD scan in Triton: forward and backward kernels behind one autograd Function.

Same semantics as `kernels.ssm.naive.ssm_scan_naive` (and `kernels.ssm.chunked`, whose docstring
has the maths): with per-step log decay ``a_t = dt_t A``, ``g`` its cumsum inside a chunk of
``Q = 64`` steps, ``dx = dt x`` and ``L[i, j] = exp(g_i - g_j)`` for ``j <= i`` (else 0)::

    y_chunk  = (L o C B^T) dx + exp(g) * (C S_in^T)                  # (Q, P) per head
    S_out    = exp(g_last) S_in + (exp(g_last - g) * dx)^T B         # (P, N) per head

Forward, three launches: `_chunk_state_kernel` (every chunk's own contribution to the state,
all chunks in parallel, one ``(P, Q) @ (Q, N)`` tensor-core dot), `_state_passing_kernel` (the
sequential pass over chunks, element-wise, parallel over the state's entries) and
`_chunk_output_kernel` (the two matmul terms of ``y``, all chunks in parallel). Backward
mirrors it: `_chunk_dstate_kernel` and a reverse `_state_passing_kernel` give the gradient of
the state leaving each chunk, then `_chunk_bwd_dx_kernel` (dx, dD and their d dt / dA share)
and `_chunk_bwd_dbc_kernel` (dB, dC per head, summed over heads afterwards, and the rest of
d dt and the per-chunk share of dA); `_chunk_bwd_kernel` does both in one program
(``NAS_SSM_TRITON_BWD=fused``, see `_bwd_kind`); dB and dC, shared by the heads, are per-head
buffers summed on the host, or float32 atomics (``NAS_SSM_TRITON_DBC=atomic``, `_dbc_kind`).
The gradient of the in-chunk log
decay is ``row sums - column sums`` of the strictly lower part of ``M = L o C B^T o dy dx^T``
plus the inter-chunk and state terms; ``d a`` is its reverse cumsum inside the chunk.

Every exp goes through `_decay` (argument clamped to ``[LOG_DECAY_MIN, 0]``, as the reference
does). Accumulation is float32. Float32 inputs always get exact float32 dots
(``input_precision="ieee"``: FMA units, no tensor cores). For bf16 / fp16 inputs
``NAS_SSM_TRITON_DOT`` picks the dot (see `_dot_kind`): ``tf32`` (the default: tensor-core TF32
dots on float32 operands, 10-bit mantissa, finer than the bf16 inputs), ``ieee`` (upcast in
registers, exact float32 dots on the FMA units, 2-3x slower) or ``16bit`` (bf16 / fp16
tensor-core dots, Hopper wgmma). The 16-bit dots gave, on the H200 with Triton 3.6
(2026-12-03, #18), a wrong bf16 dB (the ``dy dx^T`` dot summed only the first 16 of the 32
head-dim entries, matching the printed values exactly) and illegal memory accesses, with the
kernel source unchanged between dtypes.
Time may be scanned backwards (``reverse=True``: the scan of the flipped sequence, flipped
back) without copying: the kernels map chunk positions to ``T - 1 - t``.

This module imports without Triton; `HAS_TRITON` says whether the kernels exist.
"""

from __future__ import annotations

import os
from contextlib import nullcontext

import torch
from torch import Tensor

from kernels.ssm.chunked import LOG_DECAY_MIN

try:  # Triton is optional: CPU-only installs and CI have no Triton
    import triton
    import triton.language as tl
except ImportError:  # pragma: no cover - exercised where triton is absent
    triton = None
    tl = None

HAS_TRITON = triton is not None
CHUNK = 64  # steps per chunk (the tl.dot M/N/K of the intra-chunk matmuls)
_STATE_BLOCK = 128  # state entries per program of the pass over chunks
_SCAN_CHUNKS = 16  # chunks per step of that pass (one associative scan)
_DOT_FP32, _DOT_BF16, _DOT_FP16, _DOT_TF32 = 0, 1, 2, 3
DOT_ENV = "NAS_SSM_TRITON_DOT"  # the dots of 16-bit inputs: ieee | tf32 | 16bit (see _dot_kind)
DOT_CHOICES = ("ieee", "tf32", "16bit")
BWD_ENV = "NAS_SSM_TRITON_BWD"  # the backward's chunk kernels: split | fused (see _bwd_kind)
BWD_CHOICES = ("split", "fused")
DBC_ENV = "NAS_SSM_TRITON_DBC"  # how dB / dC are summed over heads: heads | atomic (_dbc_kind)
DBC_CHOICES = ("heads", "atomic")
#: num_warps of each kernel's launch (a tuning table: `benchmarks/ssm_layer_ablation.py` times
#: the layer with each entry changed)
NUM_WARPS = {"chunk_state": 4, "state_passing": 4, "chunk_output": 4, "chunk_dstate": 4,
             "chunk_bwd": 8, "chunk_bwd_dx": 4, "chunk_bwd_dbc": 8}


if HAS_TRITON:
    _LOG_MIN = tl.constexpr(LOG_DECAY_MIN)

    @triton.jit
    def _mm(a, b, DOT: tl.constexpr):
        """a @ b with float32 accumulation; inputs cast to the dot dtype ``DOT``."""
        if DOT == 1:
            return tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16))
        elif DOT == 2:
            return tl.dot(a.to(tl.float16), b.to(tl.float16))
        elif DOT == 3:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="tf32")
        else:
            return tl.dot(a.to(tl.float32), b.to(tl.float32), input_precision="ieee")

    @triton.jit
    def _decay(log_decay):
        """exp of a log decay clamped to [LOG_DECAY_MIN, 0] (as `kernels.ssm.chunked._decay`)."""
        return tl.exp(tl.minimum(tl.maximum(log_decay, _LOG_MIN), 0.0))

    @triton.jit
    def _chunk_rows(k, T, Q: tl.constexpr, REVERSE: tl.constexpr):
        """Chunk ``k``'s positions in scan order: (memory time index (Q,), valid mask (Q,))."""
        t = k * Q + tl.arange(0, Q)
        if REVERSE:
            tm = T - 1 - t
        else:
            tm = t
        return tm, t < T

    @triton.jit
    def _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h):
        """dt (Q,) (0 outside the sequence), A_h, and g = in-chunk cumsum of dt * A_h (Q,)."""
        dt = tl.load(dt_ptr + b * s_dt_b + tm * s_dt_t + h * s_dt_h, mask=valid,
                     other=0.0).to(tl.float32)
        A = tl.load(A_ptr + h).to(tl.float32)
        g = tl.cumsum(dt * A, axis=0)
        return dt, A, g

    @triton.jit
    def _load_rows(ptr, b, tm, valid, h, s_b, s_t, s_h, s_c, C, BC: tl.constexpr):
        """(Q, BC) tile of a (batch, T, [H,] C) tensor, zero outside the sequence and past C."""
        c = tl.arange(0, BC)
        mask = valid[:, None] & (c[None, :] < C)
        return tl.load(ptr + b * s_b + tm[:, None] * s_t + h * s_h + c[None, :] * s_c,
                       mask=mask, other=0.0)

    @triton.jit
    def _store_rows(ptr, val, b, tm, valid, h, s_b, s_t, s_h, s_c, C, BC: tl.constexpr):
        c = tl.arange(0, BC)
        mask = valid[:, None] & (c[None, :] < C)
        tl.store(ptr + b * s_b + tm[:, None] * s_t + h * s_h + c[None, :] * s_c,
                 val.to(ptr.dtype.element_ty), mask=mask)

    @triton.jit
    def _state_tile_ptrs(ptr, bh, k, n_chunks, BP: tl.constexpr, BN: tl.constexpr):
        """Pointers to the (BP, BN) state of chunk k of (batch * head) bh in (bh, chunk, P, N)."""
        p = tl.arange(0, BP)
        n = tl.arange(0, BN)
        return ptr + ((bh * n_chunks + k) * BP + p[:, None]) * BN + n[None, :]

    @triton.jit
    def _store_dbc(dB_ptr, dC_ptr, dB, dC, b, tm, valid, h, T, H, N, BN: tl.constexpr,
                   ATOMIC: tl.constexpr):
        """This head's (Q, BN) dB and dC tiles: added atomically into (batch, T, N) float32
        sums over the heads (ATOMIC), or stored into per-head (batch, T, H, BN) float32 buffers
        that the host sums (see `_dbc_kind`)."""
        if ATOMIC:
            c = tl.arange(0, BN)
            mask = valid[:, None] & (c[None, :] < N)
            at = (b * T + tm[:, None]) * N + c[None, :]
            tl.atomic_add(dB_ptr + at, dB, mask=mask, sem="relaxed")
            tl.atomic_add(dC_ptr + at, dC, mask=mask, sem="relaxed")
        else:
            hn_stride = H * BN
            _store_rows(dB_ptr, dB, b, tm, valid, h, T * hn_stride, hn_stride, BN, 1, BN, BN)
            _store_rows(dC_ptr, dC, b, tm, valid, h, T * hn_stride, hn_stride, BN, 1, BN, BN)

    @triton.jit
    def _chunk_state_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, S_ptr, decay_ptr,
        T, H, P, N, n_chunks,
        s_x_b, s_x_t, s_x_h, s_x_p, s_dt_b, s_dt_t, s_dt_h, s_B_b, s_B_t, s_B_n,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr,
    ):
        """S[bh, k] = (exp(g_last - g) dx)^T B (the chunk's own state); decay = exp(g_last)."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        g_last = tl.sum(dt * A, axis=0)
        x = _load_rows(x_ptr, b, tm, valid, h, s_x_b, s_x_t, s_x_h, s_x_p, P, BP)  # (Q, BP)
        Bm = _load_rows(B_ptr, b, tm, valid, 0, s_B_b, s_B_t, 0, s_B_n, N, BN)  # (Q, BN)
        dx_w = x.to(tl.float32) * (dt * _decay(g_last - g))[:, None]  # (Q, BP)
        S = _mm(tl.trans(dx_w), Bm, DOT)  # (BP, BN)
        tl.store(_state_tile_ptrs(S_ptr, bh, k, n_chunks, BP, BN), S)
        tl.store(decay_ptr + bh * n_chunks + k, _decay(g_last))

    @triton.jit
    def _affine_combine(d1, s1, d2, s2):
        """Compose ``s -> d1 s + s1`` then ``s -> d2 s + s2`` (associative)."""
        return d1 * d2, d2 * s1 + s2

    @triton.jit
    def _state_passing_kernel(
        local_ptr, out_ptr, decay_ptr, n_chunks,
        SIZE: tl.constexpr, BLOCK: tl.constexpr, KC: tl.constexpr, BACKWARD: tl.constexpr,
    ):
        """The pass over chunks: out[k] = state entering chunk k, from ``e_k = decay_{k-1}
        e_{k-1} + local_{k-1}`` (forward), or, with BACKWARD, the gradient of the state leaving
        chunk k, ``e_k = decay_{k+1} e_{k+1} + local_{k+1}`` (from the last chunk down).

        ``KC`` chunks per step: one (KC, BLOCK) load, an associative scan of the affine maps
        along the chunks, and the carry from the previous step; so the sequential depth is
        ceil(chunks / KC) memory round trips, not one per chunk.
        """
        bh = tl.program_id(1).to(tl.int64)
        offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
        local = local_ptr + bh * n_chunks * SIZE + offs[None, :]
        out = out_ptr + bh * n_chunks * SIZE + offs[None, :]
        m = tl.arange(0, KC)
        carry = tl.zeros([BLOCK], dtype=tl.float32)
        for start in range(0, n_chunks, KC):
            q = start + m  # (KC,) positions in scan order
            if BACKWARD:
                k = n_chunks - 1 - q  # chunk written
                src = k + 1  # chunk whose local state and decay step into it
            else:
                k = q
                src = k - 1
            has_src = (q >= 1) & (q < n_chunks)
            loc = tl.load(local + src[:, None] * SIZE, mask=has_src[:, None], other=0.0)
            d = tl.load(decay_ptr + bh * n_chunks + src, mask=has_src, other=1.0)  # (KC,)
            d = tl.broadcast_to(d[:, None], (KC, BLOCK))
            D, S = tl.associative_scan((d, loc), axis=0, combine_fn=_affine_combine)
            e = D * carry[None, :] + S  # (KC, BLOCK)
            tl.store(out + k[:, None] * SIZE, e, mask=(q < n_chunks)[:, None])
            carry = tl.sum(tl.where(m[:, None] == KC - 1, e, 0.0), axis=0)

    @triton.jit
    def _chunk_output_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, S_ptr, y_ptr, D_ptr,
        T, H, P, N, n_chunks,
        s_x_b, s_x_t, s_x_h, s_x_p, s_dt_b, s_dt_t, s_dt_h, s_B_b, s_B_t, s_B_n,
        s_C_b, s_C_t, s_C_n, s_y_b, s_y_t, s_y_h, s_y_p,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr, HAS_D: tl.constexpr,
    ):
        """y = (L o C B^T) dx + exp(g) (C S_in^T) [+ D_h x] for chunk k of (batch * head) bh."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        Bm = _load_rows(B_ptr, b, tm, valid, 0, s_B_b, s_B_t, 0, s_B_n, N, BN)  # (Q, BN)
        Cm = _load_rows(C_ptr, b, tm, valid, 0, s_C_b, s_C_t, 0, s_C_n, N, BN)  # (Q, BN)
        i = tl.arange(0, Q)
        L = tl.where(i[:, None] >= i[None, :], _decay(g[:, None] - g[None, :]), 0.0)  # (Q, Q)
        CB = _mm(Cm, tl.trans(Bm), DOT) * L  # (Q, Q)
        x = _load_rows(x_ptr, b, tm, valid, h, s_x_b, s_x_t, s_x_h, s_x_p, P, BP)  # (Q, BP)
        dx = x.to(tl.float32) * dt[:, None]  # (Q, BP)
        y = _mm(CB, dx, DOT)  # (Q, BP)
        S_in = tl.load(_state_tile_ptrs(S_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)
        y += _decay(g)[:, None] * _mm(Cm, tl.trans(S_in), DOT)
        if HAS_D:  # the skip term D_h x, fused: one pass over x instead of two strided kernels
            y += tl.load(D_ptr + h).to(tl.float32) * x.to(tl.float32)
        _store_rows(y_ptr, y, b, tm, valid, h, s_y_b, s_y_t, s_y_h, s_y_p, P, BP)

    @triton.jit
    def _chunk_dstate_kernel(
        dy_ptr, dt_ptr, A_ptr, C_ptr, dS_ptr,
        T, H, P, N, n_chunks,
        s_dy_b, s_dy_t, s_dy_h, s_dy_p, s_dt_b, s_dt_t, s_dt_h, s_C_b, s_C_t, s_C_n,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr,
    ):
        """dS[bh, k] = (exp(g) dy)^T C: the chunk's own gradient of the state entering it."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        dy = _load_rows(dy_ptr, b, tm, valid, h, s_dy_b, s_dy_t, s_dy_h, s_dy_p, P, BP)
        Cm = _load_rows(C_ptr, b, tm, valid, 0, s_C_b, s_C_t, 0, s_C_n, N, BN)
        dy_w = dy.to(tl.float32) * _decay(g)[:, None]  # (Q, BP)
        tl.store(_state_tile_ptrs(dS_ptr, bh, k, n_chunks, BP, BN), _mm(tl.trans(dy_w), Cm, DOT))

    @triton.jit
    def _chunk_bwd_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, S_ptr, dS_ptr, dy_ptr,
        dx_ptr, ddt_ptr, dB_ptr, dC_ptr, dA_ptr, D_ptr, dD_ptr,
        T, H, P, N, n_chunks,
        s_x_b, s_x_t, s_x_h, s_x_p, s_dt_b, s_dt_t, s_dt_h, s_B_b, s_B_t, s_B_n,
        s_C_b, s_C_t, s_C_n, s_dy_b, s_dy_t, s_dy_h, s_dy_p, s_dx_b, s_dx_t, s_dx_h, s_dx_p,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr, HAS_D: tl.constexpr, ATOMIC: tl.constexpr,
    ):
        """Gradients of chunk k of (batch * head) bh, given S_in (state entering the chunk) and
        dS (gradient of the state leaving it): dx (batch, T, H, P); d dt (batch, T, H) float32;
        this head's dB and dC (batch, T, H, BN) float32; this chunk's dA share (bh, chunk);
        with HAS_D (the fused skip ``+ D_h x``) also ``D_h dy`` in dx and this chunk's dD share."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        g_last = tl.sum(dt * A, axis=0)
        w_end = _decay(g_last - g)  # (Q,) decay from each step to the chunk's end
        w_in = _decay(g)  # (Q,) decay from the chunk's start to each step
        i = tl.arange(0, Q)
        L = tl.where(i[:, None] >= i[None, :], _decay(g[:, None] - g[None, :]), 0.0)  # (Q, Q)

        Bm = _load_rows(B_ptr, b, tm, valid, 0, s_B_b, s_B_t, 0, s_B_n, N, BN)  # (Q, BN)
        Cm = _load_rows(C_ptr, b, tm, valid, 0, s_C_b, s_C_t, 0, s_C_n, N, BN)  # (Q, BN)
        dy = _load_rows(dy_ptr, b, tm, valid, h, s_dy_b, s_dy_t, s_dy_h, s_dy_p, P, BP)
        x = _load_rows(x_ptr, b, tm, valid, h, s_x_b, s_x_t, s_x_h, s_x_p, P, BP).to(tl.float32)
        dx = x * dt[:, None]  # (Q, BP)
        S_in = tl.load(_state_tile_ptrs(S_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)
        dS = tl.load(_state_tile_ptrs(dS_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)

        # d(dx) = (L o C B^T)^T dy + w_end * (B dS^T)
        LCB = _mm(Cm, tl.trans(Bm), DOT) * L  # (Q, Q)
        ddx_state = w_end[:, None] * _mm(Bm, tl.trans(dS), DOT)  # (Q, BP)
        ddx = _mm(tl.trans(LCB), dy, DOT) + ddx_state  # (Q, BP)
        dx_out = ddx * dt[:, None]
        if HAS_D:
            dx_out += tl.load(D_ptr + h).to(tl.float32) * dy.to(tl.float32)
            tl.store(dD_ptr + bh * n_chunks + k, tl.sum(tl.sum(dy.to(tl.float32) * x, 1), 0))
        _store_rows(dx_ptr, dx_out, b, tm, valid, h, s_dx_b, s_dx_t, s_dx_h, s_dx_p,
                    P, BP)
        ddt = tl.sum(ddx * x, axis=1)  # (Q,) through dx = dt x

        # dC = (L o dy dx^T) B + w_in * (dy S_in); dB = (L o dy dx^T)^T C + w_end * (dx dS)
        DV = _mm(dy, tl.trans(dx), DOT)  # (Q, Q) dy_i . dx_j
        M = tl.where(i[:, None] > i[None, :], DV * LCB, 0.0)  # (Q, Q) strictly lower
        dg = tl.sum(M, axis=1) - tl.sum(M, axis=0)  # (Q,) intra-chunk d g
        DVL = DV * L
        dC_in = w_in[:, None] * _mm(dy, S_in, DOT)  # (Q, BN)
        dC = _mm(DVL, Bm, DOT) + dC_in
        dB = _mm(tl.trans(DVL), Cm, DOT) + w_end[:, None] * _mm(dx, dS, DOT)
        dg += tl.sum(Cm.to(tl.float32) * dC_in, axis=1)  # through exp(g) in the inter term
        state_terms = tl.sum(dx * ddx_state, axis=1)  # (Q,) through w_end in S_out
        to_last = tl.sum(state_terms, axis=0) + _decay(g_last) * tl.sum(tl.sum(dS * S_in, 1), 0)
        dg += tl.where(i == Q - 1, to_last, 0.0) - state_terms
        da = tl.cumsum(dg, axis=0, reverse=True)  # (Q,) g_i = a_0 + ... + a_i in the chunk
        ddt += da * A
        tl.store(ddt_ptr + (b * T + tm) * H + h, ddt, mask=valid)
        tl.store(dA_ptr + bh * n_chunks + k, tl.sum(da * dt, axis=0))
        _store_dbc(dB_ptr, dC_ptr, dB, dC, b, tm, valid, h, T, H, N, BN, ATOMIC)


if HAS_TRITON:
    @triton.jit
    def _chunk_bwd_dx_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, dS_ptr, dy_ptr,
        dx_ptr, ddt_ptr, dA_ptr, D_ptr, dD_ptr,
        T, H, P, N, n_chunks,
        s_x_b, s_x_t, s_x_h, s_x_p, s_dt_b, s_dt_t, s_dt_h, s_B_b, s_B_t, s_B_n,
        s_C_b, s_C_t, s_C_n, s_dy_b, s_dy_t, s_dy_h, s_dy_p, s_dx_b, s_dx_t, s_dx_h, s_dx_p,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr, HAS_D: tl.constexpr,
    ):
        """First half of `_chunk_bwd_kernel` (the ``split`` backward): dx (and dD), and the
        share of d dt and dA that flows through dx and through ``w_end`` in S_out. Three
        dots and about half the live (Q, Q) / (Q, P) tiles of the fused kernel."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        g_last = tl.sum(dt * A, axis=0)
        w_end = _decay(g_last - g)  # (Q,)
        i = tl.arange(0, Q)
        L = tl.where(i[:, None] >= i[None, :], _decay(g[:, None] - g[None, :]), 0.0)  # (Q, Q)
        Bm = _load_rows(B_ptr, b, tm, valid, 0, s_B_b, s_B_t, 0, s_B_n, N, BN)  # (Q, BN)
        Cm = _load_rows(C_ptr, b, tm, valid, 0, s_C_b, s_C_t, 0, s_C_n, N, BN)  # (Q, BN)
        dy = _load_rows(dy_ptr, b, tm, valid, h, s_dy_b, s_dy_t, s_dy_h, s_dy_p, P, BP)
        dS = tl.load(_state_tile_ptrs(dS_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)
        LCB = _mm(Cm, tl.trans(Bm), DOT) * L  # (Q, Q)
        ddx_state = w_end[:, None] * _mm(Bm, tl.trans(dS), DOT)  # (Q, BP)
        ddx = _mm(tl.trans(LCB), dy, DOT) + ddx_state  # (Q, BP)
        x = _load_rows(x_ptr, b, tm, valid, h, s_x_b, s_x_t, s_x_h, s_x_p, P, BP).to(tl.float32)
        dx_out = ddx * dt[:, None]
        if HAS_D:
            dx_out += tl.load(D_ptr + h).to(tl.float32) * dy.to(tl.float32)
            tl.store(dD_ptr + bh * n_chunks + k, tl.sum(tl.sum(dy.to(tl.float32) * x, 1), 0))
        _store_rows(dx_ptr, dx_out, b, tm, valid, h, s_dx_b, s_dx_t, s_dx_h, s_dx_p,
                    P, BP)
        ddt = tl.sum(ddx * x, axis=1)  # (Q,) through dx = dt x
        state_terms = tl.sum(x * dt[:, None] * ddx_state, axis=1)  # (Q,) through w_end
        dg = tl.where(i == Q - 1, tl.sum(state_terms, axis=0), 0.0) - state_terms
        da = tl.cumsum(dg, axis=0, reverse=True)
        tl.store(ddt_ptr + (b * T + tm) * H + h, ddt + da * A, mask=valid)
        tl.store(dA_ptr + bh * n_chunks + k, tl.sum(da * dt, axis=0))

    @triton.jit
    def _chunk_bwd_dbc_kernel(
        x_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, S_ptr, dS_ptr, dy_ptr,
        ddt_ptr, dB_ptr, dC_ptr, dA_ptr,
        T, H, P, N, n_chunks,
        s_x_b, s_x_t, s_x_h, s_x_p, s_dt_b, s_dt_t, s_dt_h, s_B_b, s_B_t, s_B_n,
        s_C_b, s_C_t, s_C_n, s_dy_b, s_dy_t, s_dy_h, s_dy_p,
        Q: tl.constexpr, BP: tl.constexpr, BN: tl.constexpr, REVERSE: tl.constexpr,
        DOT: tl.constexpr, ATOMIC: tl.constexpr,
    ):
        """Second half (the ``split`` backward, launched after `_chunk_bwd_dx_kernel`): this
        head's dB and dC (batch, T, H, BN) float32, and the rest of d dt and dA (the in-chunk
        decay of ``C B^T``, ``exp(g)`` of the inter-chunk term, and ``exp(g_last)`` of
        S_out), added to what the first half stored."""
        k = tl.program_id(0)
        bh = tl.program_id(1).to(tl.int64)
        b, h = bh // H, bh % H
        tm, valid = _chunk_rows(k, T, Q, REVERSE)
        dt, A, g = _chunk_log_decay(dt_ptr, A_ptr, b, h, tm, valid, s_dt_b, s_dt_t, s_dt_h)
        g_last = tl.sum(dt * A, axis=0)
        w_end = _decay(g_last - g)
        w_in = _decay(g)
        i = tl.arange(0, Q)
        L = tl.where(i[:, None] >= i[None, :], _decay(g[:, None] - g[None, :]), 0.0)  # (Q, Q)
        Bm = _load_rows(B_ptr, b, tm, valid, 0, s_B_b, s_B_t, 0, s_B_n, N, BN)  # (Q, BN)
        Cm = _load_rows(C_ptr, b, tm, valid, 0, s_C_b, s_C_t, 0, s_C_n, N, BN)  # (Q, BN)
        dy = _load_rows(dy_ptr, b, tm, valid, h, s_dy_b, s_dy_t, s_dy_h, s_dy_p, P, BP)
        x = _load_rows(x_ptr, b, tm, valid, h, s_x_b, s_x_t, s_x_h, s_x_p, P, BP).to(tl.float32)
        dx = x * dt[:, None]  # (Q, BP)
        DV = _mm(dy, tl.trans(dx), DOT)  # (Q, Q) dy_i . dx_j
        DVL = DV * L
        M = tl.where(i[:, None] > i[None, :], DVL * _mm(Cm, tl.trans(Bm), DOT), 0.0)
        dg = tl.sum(M, axis=1) - tl.sum(M, axis=0)  # (Q,) intra-chunk d g
        S_in = tl.load(_state_tile_ptrs(S_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)
        dC_in = w_in[:, None] * _mm(dy, S_in, DOT)  # (Q, BN)
        dg += tl.sum(Cm.to(tl.float32) * dC_in, axis=1)  # through exp(g) in the inter term
        dC = _mm(DVL, Bm, DOT) + dC_in
        dS = tl.load(_state_tile_ptrs(dS_ptr, bh, k, n_chunks, BP, BN))  # (BP, BN)
        dB = _mm(tl.trans(DVL), Cm, DOT) + w_end[:, None] * _mm(dx, dS, DOT)
        to_last = _decay(g_last) * tl.sum(tl.sum(dS * S_in, 1), 0)
        dg += tl.where(i == Q - 1, to_last, 0.0)
        da = tl.cumsum(dg, axis=0, reverse=True)
        ddt_at = ddt_ptr + (b * T + tm) * H + h
        tl.store(ddt_at, tl.load(ddt_at, mask=valid, other=0.0) + da * A, mask=valid)
        dA_at = dA_ptr + bh * n_chunks + k
        tl.store(dA_at, tl.load(dA_at) + tl.sum(da * dt, axis=0))
        _store_dbc(dB_ptr, dC_ptr, dB, dC, b, tm, valid, h, T, H, N, BN, ATOMIC)


def _dot_kind(*tensors: Tensor) -> int:
    """The dot kind of the kernels for these matmul inputs.

    Float32 (or mixed) inputs: exact float32 dots (``_DOT_FP32``). All-bf16 or all-fp16
    inputs: by ``NAS_SSM_TRITON_DOT``: ``tf32`` or unset -> ``_DOT_TF32`` (float32 operands on
    TF32 tensor cores); ``ieee`` -> ``_DOT_FP32``; ``16bit`` -> ``_DOT_BF16`` / ``_DOT_FP16``
    (16-bit tensor-core dots). Another value is a ValueError naming the choices.

    Why TF32 for 16-bit inputs: on the H200 with Triton 3.6 (2026-12-03, #18) the TF32 build
    passed the 64 value-and-gradient cases of ``pytest -m gpu tests/test_ssm_triton.py``, as
    the exact build did, at 2.2x (forward) and 3.3x (forward + backward) its speed; the 16-bit
    build (Hopper wgmma on bf16 operands) failed 54 of them (a bf16 dB at T = 1, head dim 32,
    state 64 equal to ``dy dx^T`` over only the first 16 of the 32 head-dim entries) and
    raised illegal memory accesses. The Triton interpreter (TRITON_INTERPRET=1) mis-computes
    bf16 dots (it multiplies the bit patterns), so it always gets float32.
    """
    choice = os.environ.get(DOT_ENV, "").strip().lower() or "tf32"
    if choice not in DOT_CHOICES:
        raise ValueError(f"{DOT_ENV}={choice!r}: expected one of {DOT_CHOICES}")
    if os.environ.get("TRITON_INTERPRET", "0") not in ("", "0"):
        return _DOT_FP32
    dtypes = {t.dtype for t in tensors}
    if dtypes not in ({torch.bfloat16}, {torch.float16}) or choice == "ieee":
        return _DOT_FP32
    if choice == "tf32":
        return _DOT_TF32
    return _DOT_BF16 if dtypes == {torch.bfloat16} else _DOT_FP16


def _env_choice(name: str, choices: tuple[str, ...]) -> str:
    """The value of environment variable ``name`` (trimmed, lower case) among ``choices``;
    unset or empty: the first choice; anything else a ValueError naming the choices."""
    choice = os.environ.get(name, "").strip().lower() or choices[0]
    if choice not in choices:
        raise ValueError(f"{name}={choice!r}: expected one of {choices}")
    return choice


def _bwd_kind() -> str:
    """How the backward computes each chunk's gradients, by ``NAS_SSM_TRITON_BWD``:
    ``split`` (unset: `_chunk_bwd_dx_kernel` then `_chunk_bwd_dbc_kernel`: three and six
    dots, the ``C B^T`` dot done in both, about half the live tiles each) or ``fused``
    (`_chunk_bwd_kernel`, one program per chunk and head doing all eight dots). Another value
    is a ValueError naming the choices.

    Why split is the default: the fused kernel keeps some 17 (64, 64) float32 tiles live per
    program, more than 8 warps' registers hold, and was the largest share of the layer's
    forward + backward at 1 x 8,192 tokens. Timed in one `benchmarks/mixer_kernels.py` run
    (H100, 2026-12-07, CUDA-graph replay) the split's layer forward + backward was 5.7 %
    faster at 4 x 2,048 tokens and 7 % faster at 1 x 8,192. The fused kernel stays as the
    A/B reference; both equal the naive scan on the GPU and under the Triton interpreter.
    """
    return _env_choice(BWD_ENV, BWD_CHOICES)


def _dbc_kind() -> str:
    """How the backward sums dB and dC over the heads that share B and C (``NAS_SSM_TRITON_DBC``):
    ``heads`` (the default) stores each head's tiles in (batch, T, H, BN) float32 buffers and
    sums them on the host, deterministic; ``atomic`` adds them with float32 atomics into
    (batch, T, N), one buffer each, so the sums' order (and the last bits) varies from run to
    run."""
    return _env_choice(DBC_ENV, DBC_CHOICES)


def _block(size: int) -> int:
    """tl.arange / tl.dot size for a head or state dimension: a power of two >= 16."""
    return max(16, triton.next_power_of_2(size))


def _grid_args(x: Tensor, B: Tensor) -> tuple[int, int, int, int, int, int, int, int]:
    batch, T, H, P = x.shape
    N = B.shape[-1]
    return batch, T, H, P, N, triton.cdiv(T, CHUNK), _block(P), _block(N)


def _forward(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, D: Tensor | None,
             reverse: bool) -> tuple[Tensor, Tensor, Tensor]:
    """y (batch, T, H, P), states entering each chunk (batch*H, chunks, BP, BN), chunk decays."""
    batch, T, H, P, N, chunks, BP, BN = _grid_args(x, B)
    dot = _dot_kind(x, B, C)
    local = x.new_empty(batch * H, chunks, BP, BN, dtype=torch.float32)
    decay = x.new_empty(batch * H, chunks, dtype=torch.float32)
    grid = (chunks, batch * H)
    common = dict(Q=CHUNK, BP=BP, BN=BN, REVERSE=reverse, DOT=dot)
    _chunk_state_kernel[grid](
        x, dt, A, B, local, decay, T, H, P, N, chunks,
        *x.stride(), *dt.stride(), *B.stride(), **common, num_warps=NUM_WARPS["chunk_state"])
    states = torch.empty_like(local)
    _state_passing_kernel[(triton.cdiv(BP * BN, _STATE_BLOCK), batch * H)](
        local, states, decay, chunks, SIZE=BP * BN, BLOCK=_STATE_BLOCK, KC=_SCAN_CHUNKS,
        BACKWARD=False, num_warps=NUM_WARPS["state_passing"])
    y = x.new_empty(batch, T, H, P)
    _chunk_output_kernel[grid](
        x, dt, A, B, C, states, y, A if D is None else D, T, H, P, N, chunks,
        *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *y.stride(), **common,
        HAS_D=D is not None, num_warps=NUM_WARPS["chunk_output"])
    return y, states, decay


def _backward(dy: Tensor, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,
              D: Tensor | None, states: Tensor, decay: Tensor, reverse: bool,
              ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor | None]:
    batch, T, H, P, N, chunks, BP, BN = _grid_args(x, B)
    dot = _dot_kind(x, B, C, dy)
    grid = (chunks, batch * H)
    common = dict(Q=CHUNK, BP=BP, BN=BN, REVERSE=reverse, DOT=dot)
    local = torch.empty_like(states)
    _chunk_dstate_kernel[grid](
        dy, dt, A, C, local, T, H, P, N, chunks,
        *dy.stride(), *dt.stride(), *C.stride(), **common, num_warps=NUM_WARPS["chunk_dstate"])
    dstates = torch.empty_like(states)
    _state_passing_kernel[(triton.cdiv(BP * BN, _STATE_BLOCK), batch * H)](
        local, dstates, decay, chunks, SIZE=BP * BN, BLOCK=_STATE_BLOCK, KC=_SCAN_CHUNKS,
        BACKWARD=True, num_warps=NUM_WARPS["state_passing"])
    del local
    dx = x.new_empty(batch, T, H, P)
    ddt = x.new_empty(batch, T, H, dtype=torch.float32)
    atomic = _dbc_kind() == "atomic"
    if atomic:  # (batch, T, N) sums over the heads, added to by every head's program
        dB_heads = x.new_zeros(batch, T, N, dtype=torch.float32)
        dC_heads = x.new_zeros(batch, T, N, dtype=torch.float32)
    else:  # (batch, T, H, BN) per head, summed here afterwards
        dB_heads = x.new_empty(batch, T, H, BN, dtype=torch.float32)
        dC_heads = x.new_empty(batch, T, H, BN, dtype=torch.float32)
    dA_chunks = x.new_empty(batch * H, chunks, dtype=torch.float32)
    dD_chunks = dA_chunks if D is None else torch.empty_like(dA_chunks)
    if _bwd_kind() == "fused":
        _chunk_bwd_kernel[grid](
            x, dt, A, B, C, states, dstates, dy, dx, ddt, dB_heads, dC_heads, dA_chunks,
            A if D is None else D, dD_chunks, T, H, P, N, chunks,
            *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *dy.stride(), *dx.stride(),
            **common, HAS_D=D is not None, ATOMIC=atomic, num_warps=NUM_WARPS["chunk_bwd"])
    else:  # "split": two kernels, the second adding to the first's d dt and dA
        _chunk_bwd_dx_kernel[grid](
            x, dt, A, B, C, dstates, dy, dx, ddt, dA_chunks, A if D is None else D,
            dD_chunks, T, H, P, N, chunks,
            *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *dy.stride(), *dx.stride(),
            **common, HAS_D=D is not None, num_warps=NUM_WARPS["chunk_bwd_dx"])
        _chunk_bwd_dbc_kernel[grid](
            x, dt, A, B, C, states, dstates, dy, ddt, dB_heads, dC_heads, dA_chunks,
            T, H, P, N, chunks,
            *x.stride(), *dt.stride(), *B.stride(), *C.stride(), *dy.stride(),
            **common, ATOMIC=atomic, num_warps=NUM_WARPS["chunk_bwd_dbc"])
    if atomic:
        dB, dC = dB_heads.to(B.dtype), dC_heads.to(C.dtype)
    else:
        dB = dB_heads[..., :N].sum(2).to(B.dtype)  # (batch, T, N): B is shared by the heads
        dC = dC_heads[..., :N].sum(2).to(C.dtype)
    dA = dA_chunks.view(batch, H, chunks).sum((0, 2)).to(A.dtype)  # (H,)
    dD = None if D is None else dD_chunks.view(batch, H, chunks).sum((0, 2)).to(D.dtype)
    return dx, ddt.to(dt.dtype), dA, dB, dC, dD


class _SSDScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor,  # type: ignore[override]
                D: Tensor | None, reverse: bool) -> Tensor:
        with torch.cuda.device(x.device) if x.is_cuda else nullcontext():
            y, states, decay = _forward(x, dt, A, B, C, D, reverse)
        ctx.save_for_backward(x, dt, A, B, C, D, states, decay)
        ctx.reverse = reverse
        return y

    @staticmethod
    def backward(ctx, dy: Tensor):  # type: ignore[override]
        x, dt, A, B, C, D, states, decay = ctx.saved_tensors
        with torch.cuda.device(x.device) if x.is_cuda else nullcontext():
            grads = _backward(dy, x, dt, A, B, C, D, states, decay, ctx.reverse)
        return (*grads, None)


def ssm_scan_triton(x: Tensor, dt: Tensor, A: Tensor, B: Tensor, C: Tensor, *,
                    reverse: bool = False, D: Tensor | None = None) -> Tensor:
    """Chunked SSD scan by the Triton kernels; same result as `ssm_scan_naive` (with
    ``reverse=True``, as ``ssm_scan_naive`` of the time-flipped inputs, flipped back).

    Args:
        x: (batch, T, H, P); dt: (batch, T, H) > 0; A: (H,) < 0; B, C: (batch, T, N).
            Any strides (views of a projection's output are read in place); float32, bfloat16
            or float16.
        D: optional (H,) skip weights: the result is then ``scan + D[h] * x`` (the layer's
            skip term, added inside the output kernel; differentiable in D too).

    Returns:
        y: (batch, T, H, P) contiguous, in the dtype of ``x``; differentiable in all five
        inputs. Needs Triton and (outside TRITON_INTERPRET=1) CUDA tensors; callers normally
        go through `kernels.ssm.ssm_scan`, which picks this path when it can.
    """
    if not HAS_TRITON:
        raise RuntimeError("ssm_scan_triton needs triton (pip install triton)")
    return _SSDScan.apply(x, dt, A.contiguous(), B, C,
                          None if D is None else D.contiguous(), bool(reverse))
