"""Our CPU GEMM against a float64 numpy reference: shapes, layouts, ISAs, threads, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import dlcb_kernels as dk

ISAS = dk.available_isas()


def reference(a, b, trans_a=False, trans_b=False, alpha=1.0, beta=0.0, c=None):
    a64 = (a.T if trans_a else a).astype(np.float64)
    b64 = (b.T if trans_b else b).astype(np.float64)
    out = alpha * (a64 @ b64)
    if beta != 0.0:
        out += beta * c.astype(np.float64)
    return out


def assert_close(got, want, k):
    scale = max(1.0, float(np.abs(want).max()))
    tol = 1e-6 * max(1.0, np.sqrt(k)) * 8
    err = float(np.abs(got.astype(np.float64) - want).max()) / scale
    assert err <= tol, f"relative error {err:.3g} > {tol:.3g}"


def operands(rng, m, n, k, trans_a, trans_b):
    a = rng.uniform(-1, 1, (k, m) if trans_a else (m, k)).astype(np.float32)
    b = rng.uniform(-1, 1, (n, k) if trans_b else (k, n)).astype(np.float32)
    return a, b


SHAPES = [
    (1, 1, 1), (1, 1, 7), (1, 37, 1), (29, 1, 1), (2, 3, 5), (13, 17, 19), (14, 32, 16), (15, 33, 17),
    (28, 64, 384), (31, 97, 385), (101, 103, 107), (127, 1, 255), (1, 130, 300), (3, 3, 20000),
    (150, 70, 1000), (257, 129, 513), (1009, 47, 61),
]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("trans_a", [False, True])
@pytest.mark.parametrize("trans_b", [False, True])
@pytest.mark.parametrize("m,n,k", SHAPES)
def test_matches_reference(rng, isa, trans_a, trans_b, m, n, k):
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = dk.gemm(a, b, trans_a=trans_a, trans_b=trans_b, isa=isa)
    assert c.shape == (m, n) and c.dtype == np.float32
    assert_close(c, reference(a, b, trans_a, trans_b), k)


@pytest.mark.parametrize("isa", ISAS)
def test_blocks_larger_than_cache_blocks(rng, isa):
    # Crosses every cache block boundary (kc, mc, nc) of every kernel set, with remainders.
    info = dk.kernel_info(isa)
    m, n, k = info["mc"] + 3 * info["mr"] + 1, info["nc"] + info["nr"] + 5, 2 * info["kc"] + 7
    a, b = operands(rng, m, n, k, False, False)
    assert_close(dk.gemm(a, b, isa=isa), reference(a, b), k)


@pytest.mark.parametrize("threads", [1, 2, 3, 7])
def test_thread_counts_agree(rng, threads):
    a, b = operands(rng, 300, 200, 150, False, False)
    assert_close(dk.gemm(a, b, threads=threads), reference(a, b), 150)


@pytest.mark.parametrize("alpha,beta", [(1.0, 1.0), (2.5, -0.5), (0.0, 1.0), (-1.0, 0.0), (1.0, 2.0)])
def test_alpha_beta_accumulate_in_place(rng, alpha, beta):
    a, b = operands(rng, 45, 67, 89, False, True)
    c0 = rng.uniform(-1, 1, (45, 67)).astype(np.float32)
    c = c0.copy()
    out = dk.gemm(a, b, trans_b=True, alpha=alpha, beta=beta, c=c)
    assert out is c
    assert_close(c, reference(a, b, False, True, alpha, beta, c0), 89)


def test_beta_zero_ignores_nan_in_c(rng):
    a, b = operands(rng, 20, 20, 20, False, False)
    c = np.full((20, 20), np.nan, dtype=np.float32)
    dk.gemm(a, b, c=c)
    assert np.isfinite(c).all()


def test_nan_in_inputs_propagates(rng):
    a, b = operands(rng, 20, 20, 20, False, False)
    a[3, 4] = np.nan
    c = dk.gemm(a, b)
    assert np.isnan(c[3]).all() and np.isfinite(np.delete(c, 3, axis=0)).all()


@pytest.mark.parametrize("view", ["strided", "reversed", "fortran", "broadcast", "sliced"])
def test_non_contiguous_operands_are_read_in_place(rng, view):
    base_a = rng.uniform(-1, 1, (90, 120)).astype(np.float32)
    base_b = rng.uniform(-1, 1, (120, 70)).astype(np.float32)
    a, b = {
        "strided": (base_a[::2, ::3], base_b[::3, ::2]),
        "reversed": (base_a[::-1, ::-1][:, :35], base_b[::-1][:35]),
        "fortran": (np.asfortranarray(base_a[:, :40]), np.asfortranarray(base_b[:40])),
        "broadcast": (np.broadcast_to(base_a[0], (90, 120)), base_b[:120]),
        "sliced": (base_a[5:60, 7:50], base_b[10:53, 3:60]),
    }[view]
    assert_close(dk.gemm(a, b), reference(a, b), a.shape[1])


def test_misaligned_strides_are_copied(rng):
    # A float field of a packed record array: strides of 5 bytes, not a whole element.
    records = np.zeros(30 * 20, dtype=[("tag", "u1"), ("value", "<f4")])
    records["value"] = rng.uniform(-1, 1, 30 * 20)
    a = records["value"].reshape(30, 20)
    assert a.strides[1] == 5
    b = rng.uniform(-1, 1, (20, 10)).astype(np.float32)
    assert_close(dk.gemm(a, b), reference(a, b), 20)


def test_c_with_row_padding_and_column_vectors(rng):
    a, b = operands(rng, 17, 9, 11, False, False)
    big = np.zeros((17, 40), np.float32)
    dk.gemm(a, b, c=big[:, 5:14])
    assert_close(big[:, 5:14], reference(a, b), 11)
    assert not big[:, :5].any() and not big[:, 14:].any()
    col = np.zeros((17, 1), np.float32, order="F")
    dk.gemm(a, b[:, :1], c=col)
    assert_close(col, reference(a, b[:, :1]), 11)


@pytest.mark.parametrize("m,n,k", [(0, 5, 3), (4, 0, 3), (0, 0, 0)])
def test_empty_results(m, n, k):
    a = np.ones((m, k), np.float32)
    b = np.ones((k, n), np.float32)
    assert dk.gemm(a, b).shape == (m, n)


def test_zero_k_scales_c():
    a = np.ones((3, 0), np.float32)
    b = np.ones((0, 4), np.float32)
    assert (dk.gemm(a, b) == 0).all()
    c = np.full((3, 4), 2.0, np.float32)
    dk.gemm(a, b, beta=0.5, c=c)
    assert (c == 1.0).all()


@given(
    m=st.integers(1, 70), n=st.integers(1, 70), k=st.integers(1, 90),
    trans_a=st.booleans(), trans_b=st.booleans(), isa=st.sampled_from(ISAS),
    threads=st.integers(1, 3), seed=st.integers(0, 2**31),
)
@settings(max_examples=120, deadline=None)
def test_property_matches_numpy(m, n, k, trans_a, trans_b, isa, threads, seed):
    rng = np.random.default_rng(seed)
    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = dk.gemm(a, b, trans_a=trans_a, trans_b=trans_b, isa=isa, threads=threads)
    assert_close(c, reference(a, b, trans_a, trans_b), k)


# Bad input: a clear error naming the argument, never a crash ------------------------------------

A = np.ones((4, 3), np.float32)
B = np.ones((3, 5), np.float32)


@pytest.mark.parametrize("kwargs,exc,text", [
    (dict(a=A.astype(np.float64)), TypeError, "a must have dtype float32"),
    (dict(b=B.astype(np.int32)), TypeError, "b must have dtype float32"),
    (dict(a=A.astype(">f4")), TypeError, "a must have dtype float32"),
    (dict(a=A.tolist()), TypeError, "a must be a numpy.ndarray"),
    (dict(b=np.ones(3, np.float32)), ValueError, "b must be 2-D"),
    (dict(a=np.ones((2, 4, 3), np.float32)), ValueError, "a must be 2-D"),
    (dict(b=np.ones((4, 5), np.float32)), ValueError, "inner dimensions differ"),
    (dict(trans_a=True), ValueError, "inner dimensions differ"),
    (dict(trans_a=1), TypeError, "trans_a must be a bool"),
    (dict(alpha="2"), TypeError, "alpha must be a real number"),
    (dict(beta=True), TypeError, "beta must be a real number"),
    (dict(beta=1.0), ValueError, "needs c"),
    (dict(c=np.ones((5, 4), np.float32)), ValueError, "c must have shape (4, 5)"),
    (dict(c=np.ones((4, 5), np.float64)), TypeError, "c must have dtype float32"),
    (dict(c=np.ones((4, 10), np.float32)[:, ::2]), ValueError, "c must have contiguous"),
    (dict(c=np.ones((5, 4), np.float32).T), ValueError, "c must have contiguous"),
    (dict(threads=0), ValueError, "threads must be >= 1"),
    (dict(threads=-3), ValueError, "threads must be >= 1"),
    (dict(threads=2.0), TypeError, "threads must be an int"),
    (dict(threads=True), TypeError, "threads must be an int"),
    (dict(isa="sse9"), ValueError, "isa must be one of"),
    (dict(isa=3), TypeError, "isa must be a str"),
    (dict(backend="tpu"), ValueError, "backend must be one of"),
])
def test_bad_arguments(kwargs, exc, text):
    args = dict(a=A, b=B)
    args.update(kwargs)
    a, b = args.pop("a"), args.pop("b")
    with pytest.raises(exc, match=text.replace("(", r"\(").replace(")", r"\)")):
        dk.gemm(a, b, **args)


def test_read_only_c_is_refused():
    c = np.zeros((4, 5), np.float32)
    c.flags.writeable = False
    with pytest.raises(ValueError, match="c is read-only"):
        dk.gemm(A, B, c=c)


def test_c_aliasing_an_input_is_refused():
    buf = np.ones((4, 4), np.float32)
    with pytest.raises(ValueError, match="c shares memory with a"):
        dk.gemm(buf, np.ones((4, 4), np.float32), c=buf)


def pretend_no_avx512(monkeypatch):
    import dlcb_kernels.ops.gemm as g

    monkeypatch.setattr(g._cpu, "gemm_isa", lambda isa: None if isa == "avx512" else {"isa": "portable"})
    # resolve_isa caches the kernel set per isa for the process: ask the patched module instead
    monkeypatch.setattr(g, "_kernel_set_name", g._kernel_set_name.__wrapped__)


def test_unsupported_isa_names_the_available_ones(monkeypatch):
    pretend_no_avx512(monkeypatch)
    with pytest.raises(ValueError, match="not supported by this CPU"):
        dk.gemm(A, B, isa="avx512")


def test_native_entry_point_rejects_bad_input_without_crashing():
    from dlcb_kernels import _cpu

    c = np.zeros((4, 5), np.float32)
    with pytest.raises(TypeError):
        _cpu.sgemm(A.astype(np.float64), B, c, False, False, 1.0, 0.0, "auto", 1)
    with pytest.raises(ValueError):
        _cpu.sgemm(A, B.T, c, False, False, 1.0, 0.0, "auto", 1)
    with pytest.raises(ValueError):
        _cpu.sgemm(A, B, np.zeros((5, 4), np.float32), False, False, 1.0, 0.0, "auto", 1)
    with pytest.raises(ValueError):
        _cpu.sgemm(A, B, c, False, False, 1.0, 0.0, "auto", 0)
    with pytest.raises(ValueError):
        _cpu.sgemm(A, B, c, False, False, 1.0, 0.0, "nope", 1)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("schedule", ["blocked", "narrow-n", "narrow-m"])
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (5, 300, 70), (300, 5, 70), (61, 67, 1100), (200, 150, 33)])
@pytest.mark.parametrize("trans_a,trans_b", [(False, False), (True, True)])
def test_every_schedule_matches_reference(rng, isa, schedule, m, n, k, trans_a, trans_b):
    # Each loop nest is checked on every shape, not only where the heuristic would pick it.
    from dlcb_kernels import _cpu

    a, b = operands(rng, m, n, k, trans_a, trans_b)
    c = np.full((m, n), np.nan, np.float32)
    _cpu.sgemm(a, b, c, trans_a, trans_b, 1.0, 0.0, isa, 2, kc=64, schedule=schedule)
    assert_close(c, reference(a, b, trans_a, trans_b), k)


@pytest.mark.parametrize("isa", ISAS)
def test_schedule_heuristic(isa):
    def plan(m, n):
        return dk.gemm_plan(m, n, 2048, isa=isa)

    assert plan(2048, 2048)["schedule"] == "blocked"
    assert plan(4096, 16)["schedule"] == "narrow-n"
    assert plan(35, 8457)["schedule"] == "narrow-m"
    # Narrow up to a width that depends on the L2 (at least 4 micro-panels or 64 floats, and
    # while the k block stays >= 256 deep), blocked beyond; one switch, never back.
    info = dk.kernel_info(isa)
    for axis, r in (("n", info["nr"]), ("m", info["mr"])):
        widths = range(1, 1025)
        schedules = [plan(4096, w) if axis == "n" else plan(w, 4096) for w in widths]
        narrow = [p["schedule"] != "blocked" for p in schedules]
        switch = narrow.index(False) if False in narrow else len(narrow)
        assert all(narrow[:switch]) and not any(narrow[switch:]), axis
        assert switch >= max(4 * r, 64)
        assert all(p["kc"] >= 256 for p in schedules[max(4 * r, 64):switch])


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", [(1, 1, 1), (1, 1000, 1024), (2, 7, 9), (3, 5, 31), (4, 257, 17), (5, 6, 1),
                                   (8, 10, 384), (8, 10, 500), (9, 13, 8), (16, 16, 1024), (31, 33, 3),
                                   (8, 5, 40000), (1, 1, 300000), (19, 2, 140000)])  # k in several blocks
@pytest.mark.parametrize("threads", [1, 2])
def test_inner_product_path(rng, isa, m, n, k, threads):
    # A row-major and B column-major (x W^T): small problems are dot products along k without
    # packing, every block edge (rows and columns 1-4, k tails below a vector) against float64.
    a, b = operands(rng, m, n, k, False, True)
    c0 = rng.uniform(-1, 1, (m, n + 3)).astype(np.float32)[:, :n]  # rows padded: ldc > n
    c = c0.copy()
    dk.gemm(a, b, trans_b=True, alpha=1.5, beta=-0.5, c=c, isa=isa, threads=threads)
    assert_close(c, reference(a, b, False, True, 1.5, -0.5, c0), k)
    nan_c = np.full((m, n), np.nan, np.float32)
    dk.gemm(a, b, trans_b=True, c=nan_c, isa=isa, threads=threads)  # beta 0: C is not read
    assert_close(nan_c, reference(a, b, False, True), k)
    if m * n <= 64:
        assert dk.gemm_plan(m, n, k, isa=isa, trans_b=True)["schedule"] == "inner-product"


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", [(3072, 1, 1024), (77, 3, 9), (40, 4, 140001), (5, 2, 7)])
@pytest.mark.parametrize("threads", [1, 2])
def test_gemv_path(rng, isa, m, n, k, threads):
    # A row-major times a few columns (a GEMV, B k x n row-major but each column contiguous when
    # n == 1): dot products too, rows split between threads, k in blocks when long.
    a, b = operands(rng, m, n, k, False, n > 1)
    if n == 1:
        assert dk.gemm_plan(m, n, k, isa=isa)["schedule"] == "inner-product"
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    c = c0.copy()
    dk.gemm(a, b, trans_b=n > 1, beta=1.0, c=c, isa=isa, threads=threads)
    assert_close(c, reference(a, b, False, n > 1, 1.0, 1.0, c0), k)


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("m,n,k", [(8, 1000, 1024), (13, 777, 300), (20, 2500, 64), (35, 301, 2049)])
def test_transposed_path(rng, isa, m, n, k):
    # A few rows against a wide column-major B run as C^T = B^T A^T; beta reads C transposed.
    a, b = operands(rng, m, n, k, False, True)
    plan = dk.gemm_plan(m, n, k, isa=isa, trans_b=True)
    assert plan["transposed"] or plan["schedule"] == "inner-product"
    c0 = rng.uniform(-1, 1, (m, n)).astype(np.float32)
    for beta in (0.0, 2.0):
        c = c0.copy()
        dk.gemm(a, b, trans_b=True, alpha=-1.0, beta=beta, c=c, isa=isa, threads=2)
        assert_close(c, reference(a, b, False, True, -1.0, beta, c0), k)
    assert not dk.gemm_plan(m, n, k, isa=isa)["transposed"]  # row-major B: packed as it is


def test_forced_schedule_is_validated():
    from dlcb_kernels import _cpu

    with pytest.raises(ValueError, match="schedule must be"):
        _cpu.sgemm(A, B, np.zeros((4, 5), np.float32), False, False, 1.0, 0.0, "auto", 1, schedule="fast")


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("caches", [(32 << 10, 512 << 10, 4 << 20), (32 << 10, 1 << 20, 16 << 20),
                                    (48 << 10, 2 << 20, 1536 << 10), (64 << 10, 256 << 10, 128 << 10)])
def test_blocking_is_derived_from_the_caches(isa, caches):
    # Zen 3, Zen 4, an Intel server core and a small core: each block fits the cache it is for.
    from dlcb_kernels import _cpu

    l1, l2, l3 = caches
    info = dk.kernel_info(isa)
    kc, mc, nc, narrow = _cpu.gemm_derived_blocking(isa, l1, l2, l3)
    assert 64 <= kc <= 1024 and kc % 16 == 0
    assert info["mr"] * kc * 4 <= l1 * 3 // 8 or kc == 64
    assert kc * nc * 4 <= l2 // 2 or nc == 4 * info["nr"]
    assert mc * kc * 4 <= l3 // 2 or mc == 16 * info["mr"]
    assert nc % info["nr"] == 0 and mc % info["mr"] == 0
    assert narrow == l2 // 2
    # More cache never gives smaller blocks.
    bigger = _cpu.gemm_derived_blocking(isa, 2 * l1, 2 * l2, 2 * l3)
    assert bigger[0] >= kc and bigger[1] * bigger[0] >= mc * kc and bigger[2] * bigger[0] >= nc * kc


@pytest.mark.parametrize("isa", ISAS)
def test_kernel_info_and_plan_name_their_blocking(isa):
    info = dk.kernel_info(isa)
    assert info["isa"] == isa and info["blocking_rule"]
    plan = dk.gemm_plan(2048, 2048, 2048, isa=isa)
    assert plan["schedule"] == "blocked" and (plan["kc"], plan["mc"], plan["nc"]) == (info["kc"], info["mc"], info["nc"])
    narrow = dk.gemm_plan(35, 8457, 2048, isa=isa)
    assert narrow["schedule"] == "narrow-m" and narrow["mc"] >= 35
    with pytest.raises(ValueError, match="m must be >= 0"):
        dk.gemm_plan(-1, 2, 3)
    with pytest.raises(TypeError, match="k must be an int"):
        dk.gemm_plan(1, 2, 3.5)


# ---------------------------------------------------------------------------------------------
# DLCB_ISA: what isa="auto" runs, for every CPU kernel of the process.


@pytest.mark.parametrize("isa", ISAS)
def test_dlcb_isa_forces_auto(monkeypatch, rng, isa):
    from dlcb_kernels import _cpu

    monkeypatch.setenv("DLCB_ISA", isa)
    assert dk.resolve_isa() == isa and dk.kernel_info()["isa"] == isa
    assert _cpu.gemm_isa("auto")["isa"] == isa  # the native "auto" honours it too
    assert dk.gemm_plan(64, 64, 64)["isa"] == isa
    a, b = operands(rng, 31, 45, 67, False, True)
    assert_close(dk.gemm(a, b, trans_b=True), reference(a, b, False, True), 67)
    # An explicit isa still wins.
    assert dk.resolve_isa(ISAS[0]) == ISAS[0]


def test_dlcb_isa_auto_or_empty_means_the_best(monkeypatch):
    for value in ("", "auto", "  "):
        monkeypatch.setenv("DLCB_ISA", value)
        assert dk.resolve_isa() == ISAS[0]


@pytest.mark.parametrize("value,message", [("sse9", "DLCB_ISA='sse9' is not one of"),
                                           ("AVX2", "DLCB_ISA='AVX2' is not one of")])
def test_bad_dlcb_isa_is_a_clear_error(monkeypatch, value, message):
    monkeypatch.setenv("DLCB_ISA", value)
    with pytest.raises(ValueError, match=message):
        dk.gemm(A, B)
    with pytest.raises(ValueError, match=message):
        dk.conv2d(np.zeros((1, 1, 4, 4), np.float32), np.zeros((1, 1, 3, 3), np.float32))


def test_dlcb_isa_the_cpu_lacks_names_the_available_ones(monkeypatch):
    monkeypatch.setenv("DLCB_ISA", "avx512")
    pretend_no_avx512(monkeypatch)
    with pytest.raises(ValueError, match="DLCB_ISA 'avx512' is not supported by this CPU; available"):
        dk.resolve_isa()


@pytest.mark.parametrize("threads", [10**6, 2**31, 2**70])
def test_threads_are_capped_with_a_clear_error(threads):
    # libgomp aborts the process when it cannot create a thread: refused before any native call.
    with pytest.raises(ValueError, match="threads must be at most"):
        dk.gemm(A, B, threads=threads)


def test_omp_num_threads_beyond_the_cap_is_an_error_not_an_abort():
    import os
    import subprocess
    import sys

    code = "import numpy as np, dlcb_kernels as dk; dk.gemm(np.ones((4, 4), np.float32), np.ones((4, 4), np.float32))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "OMP_NUM_THREADS": "100000"})
    assert done.returncode == 1 and "OMP_NUM_THREADS asks for 100000 threads" in done.stderr


def misaligned(x):
    """A copy of x that starts one byte into its buffer (numpy allows it; float loads there are
    undefined behaviour in C++)."""
    raw = np.zeros(x.nbytes + 1, np.uint8)
    view = raw[1:].view(np.float32).reshape(x.shape)
    view[...] = x
    assert not view.flags.aligned
    return view


@pytest.mark.parametrize("isa", ISAS)
def test_misaligned_arrays_are_copied_or_refused(rng, isa):
    a, b = operands(rng, 13, 17, 19, False, True)
    c = misaligned(np.zeros((13, 17), np.float32))
    got = dk.gemm(misaligned(a), misaligned(b), trans_b=True, c=c, isa=isa)
    assert got is c
    assert_close(c, reference(a, b, False, True), 19)
    from dlcb_kernels import _cpu

    with pytest.raises(ValueError, match="not aligned"):  # the native entry point itself
        _cpu.sgemm(misaligned(a), b, np.zeros((13, 17), np.float32), False, True, 1.0, 0.0, isa, 1)


def test_output_that_cannot_fit_in_memory_is_refused_before_allocating():
    wide = np.lib.stride_tricks.as_strided(np.ones(1, np.float32), shape=(2**20, 1), strides=(0, 0))
    with pytest.raises(ValueError, match=r"C \(1048576 x 1048576\) would need 4096 GiB"):
        dk.gemm(wide, wide.T)
