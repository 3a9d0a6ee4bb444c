//! The one call into the `gemm` crate, behind a bounds-checked safe function.
//!
//! `gemm::gemm` takes raw pointers and strides. Every matrix here is a
//! row-major view of a slice (unit column stride, a row stride of at least
//! the width), so the whole contract reduces to a few integer checks done
//! before the call.

/// A read-only row-major matrix inside a slice.
#[derive(Clone, Copy, Debug)]
pub(crate) struct MatRef<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

/// A writable row-major matrix inside a slice.
#[derive(Debug)]
pub(crate) struct MatMut<'a> {
    data: &'a mut [f32],
    rows: usize,
    cols: usize,
    row_stride: usize,
}

/// True when a `rows x cols` matrix with `row_stride` fits in `len` elements
/// with rows that do not overlap.
fn fits(len: usize, rows: usize, cols: usize, row_stride: usize) -> bool {
    rows == 0 || cols == 0 || (row_stride >= cols && (rows - 1) * row_stride + cols <= len)
}

impl<'a> MatRef<'a> {
    /// `rows x cols` starting at `data[0]`, row `i` at `data[i * row_stride..]`.
    ///
    /// # Panics
    /// If the matrix does not fit in `data` or its rows overlap.
    pub(crate) fn new(data: &'a [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(fits(data.len(), rows, cols, row_stride), "{rows}x{cols} (stride {row_stride}) in {}", data.len());
        Self { data, rows, cols, row_stride }
    }
}

impl<'a> MatMut<'a> {
    /// `rows x cols` starting at `data[0]`, row `i` at `data[i * row_stride..]`.
    ///
    /// # Panics
    /// If the matrix does not fit in `data` or its rows overlap.
    pub(crate) fn new(data: &'a mut [f32], rows: usize, cols: usize, row_stride: usize) -> Self {
        assert!(fits(data.len(), rows, cols, row_stride), "{rows}x{cols} (stride {row_stride}) in {}", data.len());
        Self { data, rows, cols, row_stride }
    }
}

/// `dst = a * b` on the calling thread (callers parallelise over tiles).
///
/// # Panics
/// If the shapes do not chain (`a` is `m x k`, `b` is `k x n`, `dst` is `m x n`).
pub(crate) fn matmul(dst: MatMut<'_>, a: MatRef<'_>, b: MatRef<'_>) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    assert!(b.rows == k && dst.rows == m && dst.cols == n, "{m}x{k} * {}x{n} -> {}x{}", b.rows, dst.rows, dst.cols);
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        for row in dst.data.chunks_mut(dst.row_stride).take(m) {
            row[..n].fill(0.0);
        }
        return;
    }
    // SAFETY: the constructors checked that each matrix, with unit column
    // stride and its row stride, lies inside its slice; the shapes chain
    // (checked above); `dst` is borrowed mutably and `a`, `b` shared, so
    // the output aliases no input; its rows do not overlap (row_stride >=
    // cols), so every output element has exactly one writer. With
    // `read_dst = false` the output is only written, never read, so its
    // previous contents need not be initialised in any particular way.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.data.as_mut_ptr(),
            1,
            dst.row_stride as isize,
            false,
            a.data.as_ptr(),
            1,
            a.row_stride as isize,
            b.data.as_ptr(),
            1,
            b.row_stride as isize,
            0.0,
            1.0,
            false,
            false,
            false,
            gemm::Parallelism::None,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(a: &[f32], b: &[f32], m: usize, k: usize, n: usize, sa: usize, sb: usize) -> Vec<f32> {
        let mut c = vec![0.0; m * n];
        for i in 0..m {
            for j in 0..n {
                c[i * n + j] = (0..k).map(|l| a[i * sa + l] * b[l * sb + j]).sum();
            }
        }
        c
    }

    #[test]
    fn matches_a_naive_product_with_strides() {
        let (m, k, n, sa, sb, sd) = (5, 7, 3, 9, 4, 6);
        let a: Vec<f32> = (0..m * sa).map(|i| (i % 11) as f32 - 5.0).collect();
        let b: Vec<f32> = (0..k * sb).map(|i| (i % 7) as f32 * 0.5 - 1.0).collect();
        let mut d = vec![f32::NAN; m * sd];
        matmul(MatMut::new(&mut d, m, n, sd), MatRef::new(&a, m, k, sa), MatRef::new(&b, k, n, sb));
        let want = naive(&a, &b, m, k, n, sa, sb);
        for i in 0..m {
            assert_eq!(&d[i * sd..i * sd + n], &want[i * n..(i + 1) * n]);
            assert!(d[i * sd + n..(i + 1) * sd].iter().all(|v| v.is_nan()), "wrote outside the view");
        }
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let mut d = vec![f32::NAN; 6];
        matmul(MatMut::new(&mut d, 2, 3, 3), MatRef::new(&[], 2, 0, 0), MatRef::new(&[], 0, 3, 3));
        assert_eq!(d, vec![0.0; 6]);
    }

    #[test]
    #[should_panic]
    fn a_view_past_the_end_of_its_slice_is_rejected() {
        MatRef::new(&[0.0; 11], 3, 4, 4);
    }

    #[test]
    #[should_panic]
    fn overlapping_output_rows_are_rejected() {
        MatMut::new(&mut [0.0; 12], 3, 4, 2);
    }
}
