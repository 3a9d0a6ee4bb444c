//! [`Matrix`], the crate's dense row-major `f64` matrix, and its bridge to faer.

use std::ops::{Index, IndexMut};

use faer::{Accum, MatMut, MatRef, Par};

use crate::error::{Error, Result};

/// A dense, row-major matrix of `f64`.
///
/// Row-major storage matches how the rest of the project lays out data
/// (weights are `out x in`, activations are `samples x units`), so callers can
/// hand buffers over without transposing. Internally every heavy operation
/// views the buffer as a faer matrix without copying.
#[derive(Debug, Clone, PartialEq)]
pub struct Matrix {
    rows: usize,
    cols: usize,
    data: Vec<f64>,
}

impl Matrix {
    /// A `rows x cols` matrix of zeros.
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self { rows, cols, data: vec![0.0; rows * cols] }
    }

    /// The `n x n` identity matrix.
    pub fn identity(n: usize) -> Self {
        let mut m = Self::zeros(n, n);
        for i in 0..n {
            m[(i, i)] = 1.0;
        }
        m
    }

    /// Wraps a row-major buffer; fails unless `data.len() == rows * cols`.
    pub fn from_rows(rows: usize, cols: usize, data: Vec<f64>) -> Result<Self> {
        if rows.checked_mul(cols) != Some(data.len()) {
            return Err(Error::DimensionMismatch {
                what: "matrix buffer length",
                expected: rows.saturating_mul(cols),
                found: data.len(),
            });
        }
        Ok(Self { rows, cols, data })
    }

    /// Number of rows.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Number of columns.
    pub fn cols(&self) -> usize {
        self.cols
    }

    /// Entry `(i, j)`, or `None` when out of bounds (like [`slice::get`]).
    pub fn get(&self, i: usize, j: usize) -> Option<f64> {
        (i < self.rows && j < self.cols).then(|| self.data[i * self.cols + j])
    }

    /// The row-major buffer.
    pub fn as_slice(&self) -> &[f64] {
        &self.data
    }

    /// Consumes the matrix and returns its row-major buffer.
    pub fn into_vec(self) -> Vec<f64> {
        self.data
    }

    /// Row `i` as a slice.
    ///
    /// # Panics
    /// If `i >= self.rows()`, like slice indexing.
    pub fn row(&self, i: usize) -> &[f64] {
        assert!(i < self.rows, "row {i} out of range for {} rows", self.rows);
        &self.data[i * self.cols..(i + 1) * self.cols]
    }

    /// The submatrix `self[rows, cols]` picked by index lists, in the order
    /// given (indices may repeat). This is how `C[S,S]` and `C[R,S]` are formed.
    pub fn select(&self, rows: &[usize], cols: &[usize]) -> Result<Matrix> {
        check_indices(rows, self.rows)?;
        check_indices(cols, self.cols)?;
        let mut data = Vec::with_capacity(rows.len() * cols.len());
        for &i in rows {
            let row = self.row(i);
            data.extend(cols.iter().map(|&j| row[j]));
        }
        Ok(Matrix { rows: rows.len(), cols: cols.len(), data })
    }

    /// The product `self * rhs`, computed by faer (blocked, SIMD, parallel).
    pub fn matmul(&self, rhs: &Matrix) -> Result<Matrix> {
        if self.cols != rhs.rows {
            return Err(Error::DimensionMismatch {
                what: "matmul inner dimension",
                expected: self.cols,
                found: rhs.rows,
            });
        }
        let mut out = Matrix::zeros(self.rows, rhs.cols);
        faer::linalg::matmul::matmul(out.view_mut(), Accum::Replace, self.view(), rhs.view(), 1.0, Par::rayon(0));
        Ok(out)
    }

    /// Subtracts `a * b^T` from `self` in place, for `a` (`rows x r`) and `b`
    /// (`cols x r`): a rank-`r` downdate computed by faer like
    /// [`Matrix::matmul`], without allocating the product.
    pub fn sub_matmul_transpose(&mut self, a: &Matrix, b: &Matrix) -> Result<()> {
        if a.rows != self.rows {
            return Err(Error::DimensionMismatch {
                what: "downdate left factor rows",
                expected: self.rows,
                found: a.rows,
            });
        }
        if b.rows != self.cols {
            return Err(Error::DimensionMismatch {
                what: "downdate right factor rows",
                expected: self.cols,
                found: b.rows,
            });
        }
        if b.cols != a.cols {
            return Err(Error::DimensionMismatch { what: "downdate factor columns", expected: a.cols, found: b.cols });
        }
        faer::linalg::matmul::matmul(self.view_mut(), Accum::Add, a.view(), b.view().transpose(), -1.0, Par::rayon(0));
        Ok(())
    }

    /// The transpose, as a new row-major matrix.
    pub fn transpose(&self) -> Matrix {
        Matrix::from_faer(self.view().transpose())
    }

    /// A zero-copy faer view of the matrix.
    pub(crate) fn view(&self) -> MatRef<'_, f64> {
        MatRef::from_row_major_slice(&self.data, self.rows, self.cols)
    }

    /// A zero-copy mutable faer view of the matrix.
    pub(crate) fn view_mut(&mut self) -> MatMut<'_, f64> {
        MatMut::from_row_major_slice_mut(&mut self.data, self.rows, self.cols)
    }

    /// Copies any faer matrix (whatever its strides) into a new [`Matrix`].
    pub(crate) fn from_faer(m: MatRef<'_, f64>) -> Matrix {
        let mut out = Matrix::zeros(m.nrows(), m.ncols());
        out.view_mut().copy_from(m);
        out
    }

    /// Fails with [`Error::NotSquare`] unless the matrix is square.
    pub(crate) fn ensure_square(&self) -> Result<usize> {
        if self.rows == self.cols {
            Ok(self.rows)
        } else {
            Err(Error::NotSquare { rows: self.rows, cols: self.cols })
        }
    }

    /// Fails with [`Error::NonFinite`] if any entry is NaN or infinite.
    pub(crate) fn ensure_finite(&self) -> Result<()> {
        if self.data.iter().all(|x| x.is_finite()) {
            Ok(())
        } else {
            Err(Error::NonFinite)
        }
    }

    /// Sum of the diagonal entries (of the leading square block).
    pub(crate) fn trace(&self) -> f64 {
        (0..self.rows.min(self.cols)).map(|i| self[(i, i)]).sum()
    }
}

/// Checks that every index is `< len`.
fn check_indices(indices: &[usize], len: usize) -> Result<()> {
    match indices.iter().find(|&&i| i >= len) {
        Some(&index) => Err(Error::IndexOutOfRange { index, len }),
        None => Ok(()),
    }
}

/// `m[(i, j)]`; panics when out of bounds, like slice indexing.
impl Index<(usize, usize)> for Matrix {
    type Output = f64;

    fn index(&self, (i, j): (usize, usize)) -> &f64 {
        assert!(i < self.rows && j < self.cols, "index ({i}, {j}) out of range for {}x{} matrix", self.rows, self.cols);
        &self.data[i * self.cols + j]
    }
}

/// `m[(i, j)] = v`; panics when out of bounds, like slice indexing.
impl IndexMut<(usize, usize)> for Matrix {
    fn index_mut(&mut self, (i, j): (usize, usize)) -> &mut f64 {
        assert!(i < self.rows && j < self.cols, "index ({i}, {j}) out of range for {}x{} matrix", self.rows, self.cols);
        &mut self.data[i * self.cols + j]
    }
}
