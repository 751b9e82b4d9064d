"""Compressed sparse rows without scipy: the index's matrices and the query vectors of one lookup.

A fresh ``nhs-lookup lookup`` process spent about a third of its CPU time importing scipy.sparse. The
catalogue index therefore keeps its matrices as :class:`Csr` records (plain numpy arrays, pickled
without scipy), a query's TF-IDF rows are built as :class:`Csr`, and :func:`dense_product` multiplies a
few query rows in numpy with the arithmetic of scipy's ``csr_matmat`` kernel (the same products, summed
in the same order) until scipy is loaded anyway or the process has made many lookups. Larger batches
run scipy's kernel, imported when first needed.

:class:`DenseRows` speeds up products with a right-hand matrix that has a few very full rows (the
catalogue's commonest character n-grams): those terms are summed last, from dense copies of the rows.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

import numpy as np

from nhs_lookup.workspace import Workspace

SMALL_BATCH = 8  # at most this many query rows: numpy product (no scipy import); more: scipy's kernel
# The numpy product of one query costs ~1 ms against ~0.1 ms in scipy's kernel, whose import costs
# ~0.3-0.4 s: a process that has made this many numpy products imports scipy and uses the kernel.
NUMPY_PRODUCTS_BEFORE_IMPORT = 300
_numpy_products = [0]  # numpy products made by this process


@dataclass
class Csr:
    """A canonical CSR matrix as its three arrays (the attributes scipy's ``csr_matrix`` has)."""

    data: np.ndarray
    indices: np.ndarray
    indptr: np.ndarray
    shape: tuple[int, int]

    format = "csr"

    @classmethod
    def of(cls, m: object) -> Csr:
        """The arrays of a scipy CSR matrix (or of another :class:`Csr`), shared, not copied."""
        return cls(m.data, m.indices, m.indptr, tuple(m.shape))  # type: ignore[attr-defined]

    @property
    def dtype(self) -> np.dtype:
        return self.data.dtype

    def to_scipy(self) -> object:
        """The same matrix as a ``scipy.sparse.csr_matrix`` (imports scipy)."""
        import scipy.sparse as sp

        return sp.csr_matrix((self.data, self.indices, self.indptr), shape=self.shape)


@dataclass
class DenseRows:
    """The rows of a right-hand CSR matrix stored in at least :data:`DENSE_ROW_SHARE` of its columns,
    also kept dense. A product with them (:func:`dense_product`) adds each left row's terms on the
    other rows first, then its terms on these rows, each group in storage order: the same sum, in that
    order, whichever path computes it. In the NHS catalogue's character n-gram matrix, 367 of 8,054
    rows (common n-grams such as " ct" or "ve ") carry over 90% of the multiply-adds of a batch
    product. scipy's sparse kernel takes ~3 ns per multiply-add, a dense row ~0.2 ns per column, so the
    product takes a third of the time (~7 MB of dense rows)."""

    slot: np.ndarray  # (rows,) int32: position among the dense rows, -1 for a row kept sparse
    values: np.ndarray | None = None  # (dense rows, columns): built on the first kernel product

    @classmethod
    def of(cls, b: object, share: float | None = None) -> DenseRows:
        """The rows of CSR *b* (scipy or :class:`Csr`) held by at least *share* of its columns."""
        share = DENSE_ROW_SHARE if share is None else share
        held = np.diff(np.asarray(b.indptr))  # type: ignore[attr-defined]
        full = held >= max(1.0, share * b.shape[1])  # type: ignore[attr-defined]
        slot = np.full(len(held), -1, dtype=np.int32)
        slot[full] = np.arange(int(full.sum()), dtype=np.int32)
        return cls(slot)

    def dense(self, b: object, dtype: np.dtype) -> np.ndarray:
        """The dense rows of *b* as (dense rows, columns) *dtype*, built once."""
        values = self.values
        if values is None or values.dtype != dtype:
            rows = np.flatnonzero(self.slot >= 0)
            ptr = np.asarray(b.indptr, dtype=np.int64)  # type: ignore[attr-defined]
            lens = ptr[rows + 1] - ptr[rows]
            at = ranges(ptr[rows], lens)
            values = np.zeros((len(rows), b.shape[1]), dtype=dtype)  # type: ignore[attr-defined]
            cols = np.asarray(b.indices)[at]  # type: ignore[attr-defined]
            values[np.repeat(np.arange(len(rows)), lens), cols] = np.asarray(b.data)[at]  # type: ignore[attr-defined]
            self.values = values
        return values


DENSE_ROW_SHARE = 0.08  # a row in >= 8% of the columns: ~0.2 ns x columns dense beats ~3 ns x its entries


def ranges(starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """``concatenate([arange(s, s + n) for s, n in zip(starts, lens)])`` (int64) without the loop: the
    positions of several CSR rows' entries, row after row."""
    starts = np.asarray(starts, dtype=np.int64)
    lens = np.asarray(lens, dtype=np.int64)
    return np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(int(lens.sum()), dtype=np.int64)


def indptr_of(rows: np.ndarray, m: int) -> np.ndarray:
    """int32 CSR row pointers of *m* rows for entries in row order (*rows*: each entry's row)."""
    ptr = np.zeros(m + 1, dtype=np.int32)
    np.cumsum(np.bincount(rows, minlength=m), out=ptr[1:])
    return ptr


def dense_last(a: object, slot: np.ndarray) -> Csr:
    """*a* with each row's entries on dense rows (``slot >= 0``) moved after the others, each group in
    its storage order: the summation order of a product with :class:`DenseRows`."""
    ptr = np.asarray(a.indptr)  # type: ignore[attr-defined]
    idx = np.asarray(a.indices)  # type: ignore[attr-defined]
    rows = np.repeat(np.arange(len(ptr) - 1), np.diff(ptr))
    order = np.lexsort((slot[idx] >= 0, rows))  # stable: rows in turn, sparse-row entries first
    return Csr(np.asarray(a.data)[order], idx[order], ptr, tuple(a.shape))  # type: ignore[attr-defined]


def _numpy_product(a: object, b: object, dtype: np.dtype) -> np.ndarray:
    """Dense ``a @ b`` as scipy's ``csr_matmat`` computes it: each output value starts at 0 and adds
    ``a[i, j] * b[j, k]`` (both in *dtype*) for the stored ``j`` of row ``i`` in storage order, then
    the stored ``k`` of row ``j`` in storage order (``np.add.at`` adds in index order, unbuffered)."""
    m, n = a.shape[0], b.shape[1]
    out = np.zeros((m, n), dtype=dtype)
    a_ptr = np.asarray(a.indptr, dtype=np.int64)
    a_idx = np.asarray(a.indices, dtype=np.int64)
    a_val = np.asarray(a.data, dtype=dtype)
    b_ptr = np.asarray(b.indptr, dtype=np.int64)
    b_idx = np.asarray(b.indices, dtype=np.int64)
    b_val = np.asarray(b.data, dtype=dtype)
    nnz = int(a_ptr[-1]) if len(a_ptr) else 0
    if nnz == 0:
        return out
    rows = np.repeat(np.arange(m, dtype=np.int64), np.diff(a_ptr))
    starts = b_ptr[a_idx[:nnz]]
    lens = b_ptr[a_idx[:nnz] + 1] - starts
    total = int(lens.sum())
    if total == 0:
        return out
    # Every (a entry, b entry) pair in kernel order: a entries in storage order, each followed by the
    # entries of its b row.
    offsets = ranges(starts, lens)
    products = np.repeat(a_val[:nnz], lens) * b_val[offsets]
    cells = np.repeat(rows, lens) * n + b_idx[offsets]
    np.add.at(out.reshape(-1), cells, products)
    return out


def dense_product(
    a: object,
    b: object,
    out_dtype: type | None = None,
    work: Workspace | None = None,
    name: str = "product",
    dense: DenseRows | None = None,
) -> np.ndarray:
    """``np.asarray((a @ b).toarray(), dtype=out_dtype)`` bit for bit for CSR *a* and *b* (scipy
    matrices or :class:`Csr`). Up to :data:`SMALL_BATCH` rows of *a* in a process without scipy:
    :func:`_numpy_product` (see :func:`_numpy_first`). Otherwise:
    scipy's own sparse kernel without its symbolic first pass (a third of the product's time; the
    output is bounded by its dense size, and query x catalogue products are nearly dense anyway).
    *out_dtype*: the values are cast before the dense array is filled (the same rounding). *work*: the
    kernel's scratch and the result (buffer *name*) come from this workspace (see workspace.py).
    *dense*: :class:`DenseRows` of *b*; the value is then that of *a* reordered by :func:`dense_last`
    (bit for bit), with terms on the dense rows added from dense copies."""
    m, n = a.shape[0], b.shape[1]
    dtype = np.result_type(a.dtype, b.dtype)
    small = m <= SMALL_BATCH and _numpy_first()
    kernels = None if small else _kernels()
    if small or kernels is None or a.format != "csr" or b.format != "csr" or m * n >= 2**31 - 1:
        if dense is not None:  # these paths add in storage order: put the dense-row terms last
            a = dense_last(a, dense.slot)
        if not small:
            return _scipy_product(a, b, out_dtype)
        out = _numpy_product(a, b, dtype)
        return out if out_dtype is None else out.astype(out_dtype)
    csr_matmat, csr_todense, csr_matvecs = kernels
    i32 = np.int32
    work = work or Workspace()  # a throwaway one: plain fresh arrays
    a_ptr = np.asarray(a.indptr, dtype=i32)
    a_idx = np.asarray(a.indices, dtype=i32)
    a_val = np.asarray(a.data, dtype=dtype)
    if dense is not None:  # sparse-row terms through the kernel below, dense-row terms after it
        slot = dense.slot[a_idx]
        on_dense = slot >= 0
        rows = np.repeat(np.arange(m, dtype=i32), np.diff(a_ptr))
        d_ptr = indptr_of(rows[on_dense], m)
        d_slot, d_val = slot[on_dense], a_val[on_dense]
        keep = ~on_dense
        a_ptr, a_idx, a_val = indptr_of(rows[keep], m), a_idx[keep], a_val[keep]
    indptr = np.empty(m + 1, dtype=i32)
    indices = work.empty("matmat_indices", (m * n,), i32)
    data = work.empty("matmat_data", (m * n,), dtype)
    csr_matmat(
        m,
        n,
        a_ptr,
        a_idx,
        a_val,
        np.asarray(b.indptr, dtype=i32),
        np.asarray(b.indices, dtype=i32),
        np.asarray(b.data, dtype=dtype),
        indptr,
        indices,
        data,
    )
    nnz = int(indptr[-1])
    if dense is None:
        values = data[:nnz] if out_dtype is None else data[:nnz].astype(out_dtype)
        out = work.zeros(name, (m, n), values.dtype)
        csr_todense(m, n, indptr, indices[:nnz], values, out)
        return out
    out = work.zeros(name if out_dtype in (None, dtype) else name + "_sum", (m, n), dtype)
    csr_todense(m, n, indptr, indices[:nnz], data[:nnz], out)  # 0 + partial sum: the partial sum
    rows_d = dense.dense(b, dtype)
    # out[i] += a[i, j] * row_j for the dense rows j of query i, in storage order ("axpy", no FMA)
    csr_matvecs(m, rows_d.shape[0], n, d_ptr, d_slot, d_val, rows_d.reshape(-1), out.reshape(-1))
    if out_dtype in (None, dtype):
        return out
    cast = work.empty(name, (m, n), out_dtype)
    cast[...] = out
    return cast


def _kernels() -> tuple | None:
    """scipy's csr_matmat, csr_todense and csr_matvecs kernels (imports scipy.sparse), or None for a
    scipy without these private functions."""
    try:
        from scipy.sparse._sparsetools import csr_matmat, csr_matvecs, csr_todense
    except ImportError:
        return None
    return csr_matmat, csr_todense, csr_matvecs


def _numpy_first() -> bool:
    """Whether a small product should skip scipy: not while scipy.sparse is loaded anyway, nor once
    this process has made enough numpy products to repay the import (the values are the same)."""
    if "scipy.sparse" in sys.modules or _numpy_products[0] >= NUMPY_PRODUCTS_BEFORE_IMPORT:
        return False
    _numpy_products[0] += 1
    return True


def _scipy_product(a: object, b: object, out_dtype: type | None) -> np.ndarray:
    """The public scipy path (the reference the fast paths reproduce)."""
    sa = a.to_scipy() if isinstance(a, Csr) else a
    sb = b.to_scipy() if isinstance(b, Csr) else b
    return np.asarray((sa @ sb).toarray(), dtype=out_dtype)
