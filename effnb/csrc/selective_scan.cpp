// effnb's native selective scan (backend="native" of effnb.scan.selective_scan), built by
// effnb.scan._native_module with torch.utils.cpp_extension.load; bound to Python in bindings.cpp.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <cmath>
#include <vector>

#include "kernels.h"

// One row (b, d) of the scan: h_t = exp(dt_t A) h_{t-1} + dt_t u_t B_t ;  y_t = <C_t, h_t>
// (Mamba Alg. 2, ZOH-style B).  u, dt, y: the row's l steps.  A: its n entries.
// B, C: step t at B + t*sB (sB = n selective, 0 time-invariant).
// h: h_0 on entry, h_l on exit.  SAVE also writes every h_t and exp(dt_t A) to H, E (l x n) for the backward.
template <typename T, bool SAVE>
static void row_fwd(const T* u, const T* dt, const T* A, const T* B, const T* C, int64_t sB, int64_t sC,
                    int64_t n, int64_t l,
                    T* h, T* y, T* H, T* E) {
  for (int64_t t = 0; t < l; ++t) {
    const T d = dt[t], x = d * u[t]; const T* b = B + t * sB; const T* c = C + t * sC; T acc = 0;
#pragma omp simd reduction(+:acc)
    for (int64_t k = 0; k < n; ++k) {                    // the n states of one channel: SIMD lanes
      const T e = std::exp(d * A[k]); const T hk = e * h[k] + x * b[k];
      h[k] = hk; acc += hk * c[k];
      if (SAVE) { H[t * n + k] = hk; E[t * n + k] = e; }
    }
    if (y) y[t] = acc;
  }
}

// The reverse pass of one row after row_fwd<SAVE=true>.  g: dL/dh_l on entry, dL/dh_0 on exit.
// Writes du, ddt (l); adds into gA (n) and gB, gC (step t at + t*sB, + t*sC).
template <typename T>
static void row_bwd(const T* u, const T* dt, const T* A, const T* B, const T* C, int64_t sB, int64_t sC,
                    int64_t n, int64_t l, const T* h0, const T* H, const T* E, const T* gy, T* g,
                    T* du, T* ddt, T* gA, T* gB, T* gC) {
  for (int64_t t = l - 1; t >= 0; --t) {
    const T d = dt[t], ut = u[t], x = d * ut, gyt = gy[t];
    const T* b = B + t * sB; const T* c = C + t * sC; const T* hp = t ? H + (t - 1) * n : h0;
    const T* ht = H + t * n; const T* e = E + t * n;
    T* gb = gB + t * sB; T* gc = gC + t * sC; T s = 0, sd = 0;
#pragma omp simd reduction(+:s, sd)
    for (int64_t k = 0; k < n; ++k) {
      const T gk = g[k] + gyt * c[k];                                  // dL/dh_t: from y_t and from h_{t+1}
      gc[k] += gyt * ht[k];
      const T ga = gk * hp[k] * e[k];                                  // dL/d(dt_t A_k)
      sd += ga * A[k]; gA[k] += ga * d;
      gb[k] += gk * x; s += gk * b[k];
      g[k] = gk * e[k];                                                // dL/dh_{t-1}
    }
    du[t] = s * d; ddt[t] = sd + s * ut;
  }
}

// u, dt (b, d, l); A (d, n); B, C (b, l, n) selective or (d, n) time-invariant; h0 (b, d, n)
//   ->  y (b, d, l), h_l (b, d, n).
std::vector<torch::Tensor> scan_fwd(torch::Tensor u, torch::Tensor dt, torch::Tensor A, torch::Tensor B,
                                    torch::Tensor C, torch::Tensor h0) {
  const int64_t b = u.size(0), d = u.size(1), l = u.size(2), n = A.size(1);
  const bool sb = B.dim() == 3, sc = C.dim() == 3;
  auto y = torch::empty_like(u); auto h = h0.clone();
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_fwd", [&] {
    const scalar_t *pu = u.data_ptr<scalar_t>(), *pd = dt.data_ptr<scalar_t>(), *pA = A.data_ptr<scalar_t>(),
                   *pB = B.data_ptr<scalar_t>(), *pC = C.data_ptr<scalar_t>();
    scalar_t *py = y.data_ptr<scalar_t>(), *ph = h.data_ptr<scalar_t>();
    at::parallel_for(0, b * d, 1, [&](int64_t r0, int64_t r1) {          // rows are independent
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / d, di = r % d;
        row_fwd<scalar_t, false>(pu + r * l, pd + r * l, pA + di * n, pB + (sb ? bi * l * n : di * n),
                                 pC + (sc ? bi * l * n : di * n),
                                 sb ? n : 0, sc ? n : 0, n, l, ph + r * n, py + r * l, nullptr, nullptr);
      }
    });
  });
  return {y, h};
}

// Gradients given gy (b, d, l) and g_last (b, d, n): du, ddt (b, d, l), gA (d, n), gB, gC (as B, C in
// scan_fwd), gh0 (b, d, n).  Each row recomputes its forward into a per-thread l x n buffer, then runs
// backwards.  Selective gB, gC sum over d: when b >= threads a thread owns whole batch entries; otherwise
// ("shared") each thread adds into its own (b, l, n) copy, summed at the end.
std::vector<torch::Tensor> scan_bwd(torch::Tensor u, torch::Tensor dt, torch::Tensor A, torch::Tensor B,
                                    torch::Tensor C, torch::Tensor h0,
                                    torch::Tensor gy, torch::Tensor g_last) {
  const int64_t b = u.size(0), d = u.size(1), l = u.size(2), n = A.size(1);
  const bool sb = B.dim() == 3, sc = C.dim() == 3;
  const int64_t nt = at::get_num_threads(); const bool shared = (sb || sc) && b < nt;
  const int64_t slots = shared ? nt : 1;
  auto du = torch::empty_like(u), ddt = torch::empty_like(u), g = g_last.clone();
  auto gA = torch::zeros({b, d, n}, u.options());
  auto gB = sb ? torch::zeros({slots, b, l, n}, u.options()) : torch::zeros({b, d, n}, u.options());
  auto gC = sc ? torch::zeros({slots, b, l, n}, u.options()) : torch::zeros({b, d, n}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "scan_bwd", [&] {
    const scalar_t *pu = u.data_ptr<scalar_t>(), *pd = dt.data_ptr<scalar_t>(), *pA = A.data_ptr<scalar_t>(),
                   *pB = B.data_ptr<scalar_t>(), *pC = C.data_ptr<scalar_t>(), *ph0 = h0.data_ptr<scalar_t>(),
                   *pgy = gy.data_ptr<scalar_t>();
    scalar_t *pdu = du.data_ptr<scalar_t>(), *pddt = ddt.data_ptr<scalar_t>(), *pg = g.data_ptr<scalar_t>(),
             *pgA = gA.data_ptr<scalar_t>(),
             *pgB = gB.data_ptr<scalar_t>(), *pgC = gC.data_ptr<scalar_t>();
    auto rows = [&](int64_t r0, int64_t r1, int64_t slot) {
      std::vector<scalar_t> H(l * n), E(l * n), h(n);
      for (int64_t r = r0; r < r1; ++r) {
        const int64_t bi = r / d, di = r % d, ob = sb ? bi * l * n : di * n, oc = sc ? bi * l * n : di * n;
        std::copy(ph0 + r * n, ph0 + (r + 1) * n, h.begin());
        row_fwd<scalar_t, true>(pu + r * l, pd + r * l, pA + di * n, pB + ob, pC + oc, sb ? n : 0, sc ? n : 0,
                                n, l, h.data(), nullptr, H.data(), E.data());
        row_bwd<scalar_t>(pu + r * l, pd + r * l, pA + di * n, pB + ob, pC + oc, sb ? n : 0, sc ? n : 0,
                          n, l, ph0 + r * n, H.data(), E.data(),
                          pgy + r * l, pg + r * n, pdu + r * l, pddt + r * l, pgA + r * n,
                          pgB + (sb ? (slot * b + bi) * l * n : r * n),
                          pgC + (sc ? (slot * b + bi) * l * n : r * n));
      }
    };
    if ((sb || sc) && !shared)
      at::parallel_for(0, b, 1, [&](int64_t b0, int64_t b1) { rows(b0 * d, b1 * d, 0); });
    else
      at::parallel_for(0, b * d, 1, [&](int64_t r0, int64_t r1) {
        rows(r0, r1, shared ? at::get_thread_num() : 0);
      });
  });
  // sums: over slots (selective) or batch (time-invariant, and gA)
  return {du, ddt, gA.sum(0), gB.sum(0), gC.sum(0), g};
}
