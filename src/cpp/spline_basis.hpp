// Local B-spline bases of one sample: only the k+1 that are non-zero at x, by the scalar
// instantiation of cox_de_boor.hpp over the knot vector and its table.  Included inside
// one namespace per instruction set (kernels_isa.cpp).
#pragma once

#include "cox_de_boor.hpp"
#include "knot_access.hpp"
#include "knots.hpp"

// Bases of order k at x in span s: N[r] = B_{k, s-k+r}(x), r = 0..k (The NURBS Book,
// A2.2, with the reciprocals from the table).  With dN, also dN[r] = dB_{k, s-k+r}/dx.
// Entries for bases outside 0..n_basis-1 are meaningless and must be ignored.
template <typename T, int K>
inline void local_basis(T x, const T* t, int64_t n_knots, const T* inv_i, int64_t s,
                        int k_runtime, T* N, T* dN) {
  const int k = K > 0 ? K : k_runtime;
  const TableKnots<T> kn{t, n_knots, inv_i, s, k};
  if (dN)
    bases_at<K, true>(kn, x, k, N, dN);
  else
    bases_at<K, false>(kn, x, k, N, static_cast<T*>(nullptr));
}
