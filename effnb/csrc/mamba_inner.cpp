// The Mamba layer's fused CPU path (effnb.mamba.mamba_inner); bound to Python in bindings.cpp.
#include <torch/extension.h>
#include <ATen/Parallel.h>
#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "kernels.h"

// ---- The Mamba mixer's inner part in the (b, l, d) layout of its projections: no transposes, no copies. ----
// u = silu(causal depthwise conv(x)); y = (scan(u, softplus(dt + dt_bias), A, B, C) + D u) silu(z).
// Every (b, l, .) tensor is read through its strides (the last one must be 1), so x and z can be the two
// halves of in_proj's output and B, C slices of x_proj's output, as they come.

// The largest argument of exp whose result is finite, less a hair.  Past it IEEE would give 1 / (1 + inf) = 0,
// but under -ffast-math the vectorised exp and division give NaN: silu(x) for float32 x < -88.7 was NaN, which
// broke training runs whose activations grew that large.  Clamping changes nothing for arguments up to the bound.
template <typename T> constexpr T exp_max() { return sizeof(T) == 4 ? T(88.72) : T(709.78); }
template <typename T> static inline T sigm(T v) { return T(1) / (T(1) + std::exp(std::min(-v, exp_max<T>()))); }

// o[c] = bias[c] + sum_k w[k, c] x[t - K + 1 + k, c] for one (batch, t): the causal depthwise conv, d wide.
template <typename T>
static void conv_at(const T* xb, int64_t sxl, const T* w, const T* bias, int64_t K, int64_t d, int64_t t,
                    T* o) {
#pragma omp simd
  for (int64_t c = 0; c < d; ++c) o[c] = bias[c];
  for (int64_t k = 0; k < K; ++k) {
    const int64_t s = t - K + 1 + k; if (s < 0) continue;
    const T* xs = xb + s * sxl; const T* wk = w + k * d;
#pragma omp simd
    for (int64_t c = 0; c < d; ++c) o[c] += wk[c] * xs[c];
  }
}

// x (b, l, d) strided; w (K, d) the conv weight transposed; bias (d)  ->  u (b, l, d) contiguous.
template <typename T>
static void conv_silu_fwd_impl(const T* x, int64_t sxb, int64_t sxl, const T* w, const T* bias, int64_t b,
                               int64_t l, int64_t d, int64_t K, T* u) {
  at::parallel_for(0, b * l, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* o = u + r * d; conv_at(x + (r / l) * sxb, sxl, w, bias, K, d, r % l, o);
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] = o[c] * sigm(o[c]);
    }
  });
}

torch::Tensor conv_silu_fwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), K = w.size(0);
  auto u = torch::empty({b, l, d}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_fwd", [&] {
    conv_silu_fwd_impl<scalar_t>(x.data_ptr<scalar_t>(), x.stride(0), x.stride(1), w.data_ptr<scalar_t>(),
                                 bias.data_ptr<scalar_t>(), b, l, d, K, u.data_ptr<scalar_t>());
  });
  return u;
}

// The backward of conv_silu_fwd: gp = gu silu'(pre) into a (b, l, d) buffer; gx (strided) = the transposed
// conv of gp; gw (K, d) and gbias (d) summed over batch and time by threads that own channel ranges.
template <typename T>
static void conv_silu_bwd_impl(const T* x, int64_t sxb, int64_t sxl, const T* w, const T* bias, const T* gu,
                               int64_t b, int64_t l, int64_t d, int64_t K, T* gp, T* gx, int64_t sgb,
                               int64_t sgl, T* gw, T* gbias) {
  at::parallel_for(0, b * l, 16, [&](int64_t r0, int64_t r1) {
    for (int64_t r = r0; r < r1; ++r) {
      T* o = gp + r * d; const T* g = gu + r * d; conv_at(x + (r / l) * sxb, sxl, w, bias, K, d, r % l, o);
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) {
        const T p = o[c], sg = sigm(p);
        o[c] = g[c] * sg * (T(1) + p * (T(1) - sg));
      }
    }
  });
  at::parallel_for(0, b * l, 16, [&](int64_t r0, int64_t r1) {   // gx_s = sum_k w_k gp_{s + K - 1 - k}
    for (int64_t r = r0; r < r1; ++r) {
      const int64_t bi = r / l, s = r % l; T* o = gx + bi * sgb + s * sgl;
#pragma omp simd
      for (int64_t c = 0; c < d; ++c) o[c] = 0;
      for (int64_t k = 0; k < K; ++k) {
        const int64_t t = s + K - 1 - k; if (t >= l) continue;
        const T* g = gp + (bi * l + t) * d; const T* wk = w + k * d;
#pragma omp simd
        for (int64_t c = 0; c < d; ++c) o[c] += wk[c] * g[c];
      }
    }
  });
  at::parallel_for(0, d, 16, [&](int64_t c0, int64_t c1) {
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t t = 0; t < l; ++t) {
        const T* g = gp + (bi * l + t) * d;
#pragma omp simd
        for (int64_t c = c0; c < c1; ++c) gbias[c] += g[c];
        for (int64_t k = 0; k < K; ++k) {
          const int64_t s = t - K + 1 + k; if (s < 0) continue;
          const T* xs = x + bi * sxb + s * sxl; T* o = gw + k * d;
#pragma omp simd
          for (int64_t c = c0; c < c1; ++c) o[c] += g[c] * xs[c];
        }
      }
  });
}

// gx is written into `gx` (strided like x); returns gw (K, d), gbias (d).
std::vector<torch::Tensor> conv_silu_bwd(torch::Tensor x, torch::Tensor w, torch::Tensor bias, torch::Tensor gu,
                                         torch::Tensor gx) {
  const int64_t b = x.size(0), l = x.size(1), d = x.size(2), K = w.size(0);
  auto gp = torch::empty({b, l, d}, x.options());
  auto gw = torch::zeros({K, d}, x.options()), gb = torch::zeros({d}, x.options());
  AT_DISPATCH_FLOATING_TYPES(x.scalar_type(), "conv_silu_bwd", [&] {
    conv_silu_bwd_impl<scalar_t>(x.data_ptr<scalar_t>(), x.stride(0), x.stride(1), w.data_ptr<scalar_t>(),
                                 bias.data_ptr<scalar_t>(), gu.data_ptr<scalar_t>(), b, l, d, K,
                                 gp.data_ptr<scalar_t>(), gx.data_ptr<scalar_t>(), gx.stride(0), gx.stride(1),
                                 gw.data_ptr<scalar_t>(), gb.data_ptr<scalar_t>());
  });
  return {gw, gb};
}

// The gated scan works on tiles: a block of CB channels of one batch entry is gathered from the (l, .) layout
// into contiguous (CB, l) rows (one cache line per step), scanned row by row, and scattered back.
constexpr int64_t CB = 16;

// out[j * l + t] = p[t * s + j] + add[j] for j < cb: a (l, cb) strided tile to (cb, l) rows.
template <typename T>
static void gather(const T* p, int64_t s, int64_t cb, int64_t l, T* out, const T* add = nullptr) {
  for (int64_t t = 0; t < l; ++t)
    for (int64_t j = 0; j < cb; ++j) out[j * l + t] = p[t * s + j] + (add ? add[j] : T(0));
}

// p[t * s + j] = in[j * l + t]: the inverse of gather.
template <typename T>
static void scatter(const T* in, int64_t cb, int64_t l, T* p, int64_t s) {
  for (int64_t t = 0; t < l; ++t)
    for (int64_t j = 0; j < cb; ++j) p[t * s + j] = in[j * l + t];
}

// Δ = softplus(P) and, if dP, softplus'(P) = sigmoid(P), over m values: vectorized, outside the scan's loop.
template <typename T>
static void softplus_tile(const T* P, int64_t m, T* dl, T* dP) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) {
    const T e = std::exp(std::min(P[i], T(20)));
    dl[i] = P[i] > T(20) ? P[i] : std::log(T(1) + e);
    if (dP) dP[i] = P[i] > T(20) ? T(1) : e / (T(1) + e);
  }
}

// sigmoid(z) over m values.
template <typename T>
static void sigmoid_tile(const T* z, int64_t m, T* out) {
#pragma omp simd
  for (int64_t i = 0; i < m; ++i) out[i] = T(1) / (T(1) + std::exp(std::min(-z[i], exp_max<T>())));
}

// One channel's scan from h_0 = 0, forward: acc_t = <C_t, h_t>, h_t = exp(Δ_t A) h_{t-1} + Δ_t u_t B_t,
// Δ_t = softplus(dt_t + dt_bias), given.  Writes y_t = (acc_t + D u_t) z_t sigmoid(z_t) if y, and with SAVE every
// h_t, exp(Δ_t A) (l x n) and acc_t for the backward.  B, C: step t at + t * sB, + t * sC.
template <typename T, bool SAVE>
static void gated_row_fwd(const T* u, const T* Dl, const T* z, const T* sz, const T* A, const T* B, const T* C,
                          int64_t sB, int64_t sC, T Dc, int64_t n, int64_t l, T* h, T* y, T* H, T* E, T* Yl) {
  for (int64_t k = 0; k < n; ++k) h[k] = 0;
  for (int64_t t = 0; t < l; ++t) {
    const T dl = Dl[t], x = dl * u[t]; const T* b = B + t * sB; const T* c = C + t * sC; T acc = 0;
#pragma omp simd reduction(+:acc)
    for (int64_t k = 0; k < n; ++k) {
      const T e = std::exp(dl * A[k]); const T hk = e * h[k] + x * b[k];
      h[k] = hk; acc += hk * c[k];
      if (SAVE) { H[t * n + k] = hk; E[t * n + k] = e; }
    }
    if (SAVE) Yl[t] = acc;
    if (y) y[t] = (acc + Dc * u[t]) * z[t] * sz[t];
  }
}

// The reverse pass of one channel after gated_row_fwd<SAVE=true>, given Δ, softplus' (dP) and sigmoid(z) (sz):
// writes gu, gdt (dL/d(dt + dt_bias)), gz (l); adds into
// gA (n) and gB, gC (step t at + t * n); returns (gD, gdt_bias) of the channel.  g: an n-vector of scratch.
template <typename T>
static std::pair<T, T> gated_row_bwd(const T* u, const T* Dl, const T* dP, const T* z, const T* sz, const T* A,
                                     const T* B, const T* C,
                                     int64_t sB, int64_t sC, T Dc, int64_t n, int64_t l, const T* H, const T* E,
                                     const T* Yl, const T* gy, T* g, T* gu, T* gdt, T* gz, T* gA, T* gB, T* gC) {
  for (int64_t k = 0; k < n; ++k) g[k] = 0;
  T gD = 0, gbias = 0;
  for (int64_t t = l - 1; t >= 0; --t) {
    const T ut = u[t], dl = Dl[t], x = dl * ut, zt = z[t], sg = sz[t];
    gz[t] = gy[t] * (Yl[t] + Dc * ut) * sg * (T(1) + zt * (T(1) - sg));
    const T gv = gy[t] * zt * sg;                                  // dL/d(acc_t + D u_t)
    gD += gv * ut;
    const T* b = B + t * sB; const T* c = C + t * sC; const T* ht = H + t * n; const T* e = E + t * n;
    T* gb = gB + t * n; T* gc = gC + t * n; T s = 0, sd = 0;
    if (t) {
      const T* hp = H + (t - 1) * n;
#pragma omp simd reduction(+:s, sd)
      for (int64_t k = 0; k < n; ++k) {
        const T gk = g[k] + gv * c[k];                             // dL/dh_t: from y_t and from h_{t+1}
        gc[k] += gv * ht[k];
        const T ga = gk * hp[k] * e[k];                            // dL/d(Δ_t A_k)
        sd += ga * A[k]; gA[k] += ga * dl;
        gb[k] += gk * x; s += gk * b[k];
        g[k] = gk * e[k];                                          // dL/dh_{t-1}
      }
    } else {                                                       // h_{-1} = 0
#pragma omp simd reduction(+:s)
      for (int64_t k = 0; k < n; ++k) {
        const T gk = g[k] + gv * c[k];
        gc[k] += gv * ht[k]; gb[k] += gk * x; s += gk * b[k];
      }
    }
    const T gpre = (sd + s * ut) * dP[t];                           // dL/dΔ_t · softplus'
    gu[t] = s * dl + gv * Dc; gdt[t] = gpre; gbias += gpre;
  }
  return {gD, gbias};
}

// u, dt (b, l, d); z (b, l, d) strided; A (d, n); B, C (b, l, n) strided; D, dt_bias (d)  ->  y (b, l, d).
template <typename T>
static void gated_scan_fwd_impl(const torch::Tensor& u, const torch::Tensor& dt, const torch::Tensor& z,
                                const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                                const torch::Tensor& D, const torch::Tensor& dt_bias, torch::Tensor& y) {
  const int64_t b = u.size(0), l = u.size(1), d = u.size(2), n = A.size(1), nb = (d + CB - 1) / CB;
  const T *pu = u.data_ptr<T>(), *pd = dt.data_ptr<T>(), *pz = z.data_ptr<T>(), *pA = A.data_ptr<T>(),
          *pB = B.data_ptr<T>(), *pC = C.data_ptr<T>(), *pD = D.data_ptr<T>(), *pb = dt_bias.data_ptr<T>();
  T* py = y.data_ptr<T>();
  at::parallel_for(0, b * nb, 1, [&](int64_t w0, int64_t w1) {
    std::vector<T> U(CB * l), Pb(CB * l), Z(CB * l), SZ(CB * l), Y(CB * l), h(n);
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t bi = w / nb, c0 = (w % nb) * CB, cb = std::min(CB, d - c0);
      gather(pu + bi * u.stride(0) + c0, u.stride(1), cb, l, U.data());
      gather(pd + bi * dt.stride(0) + c0, dt.stride(1), cb, l, Pb.data(), pb + c0);
      gather(pz + bi * z.stride(0) + c0, z.stride(1), cb, l, Z.data());
      softplus_tile(Pb.data(), cb * l, Pb.data(), (T*)nullptr);  // in place: P -> Δ
      sigmoid_tile(Z.data(), cb * l, SZ.data());
      for (int64_t j = 0; j < cb; ++j)
        gated_row_fwd<T, false>(U.data() + j * l, Pb.data() + j * l, Z.data() + j * l, SZ.data() + j * l,
                                pA + (c0 + j) * n,
                                pB + bi * B.stride(0), pC + bi * C.stride(0), B.stride(1), C.stride(1),
                                pD[c0 + j], n, l, h.data(), Y.data() + j * l, nullptr, nullptr, nullptr);
      scatter(Y.data(), cb, l, py + bi * l * d + c0, d);
    }
  });
}

torch::Tensor gated_scan_fwd(torch::Tensor u, torch::Tensor dt, torch::Tensor z, torch::Tensor A,
                             torch::Tensor B, torch::Tensor C, torch::Tensor D, torch::Tensor dt_bias) {
  auto y = torch::empty({u.size(0), u.size(1), u.size(2)}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gated_scan_fwd", [&] {
    gated_scan_fwd_impl<scalar_t>(u, dt, z, A, B, C, D, dt_bias, y);
  });
  return y;
}

// The backward of gated_scan_fwd, tile by tile: each channel recomputes its forward into per-thread buffers,
// then runs backwards.  gB, gC sum over channels: a thread owns whole batch entries when b >= threads,
// otherwise each thread adds into its own (b, l, n) slot, summed by the caller.
template <typename T>
static void gated_scan_bwd_impl(const torch::Tensor& u, const torch::Tensor& dt, const torch::Tensor& z,
                                const torch::Tensor& A, const torch::Tensor& B, const torch::Tensor& C,
                                const torch::Tensor& D, const torch::Tensor& dt_bias, const torch::Tensor& gy,
                                torch::Tensor& gz, torch::Tensor& gu, torch::Tensor& gdt, torch::Tensor& gA,
                                torch::Tensor& gB, torch::Tensor& gC, torch::Tensor& gD, torch::Tensor& gbias,
                                bool shared) {
  const int64_t b = u.size(0), l = u.size(1), d = u.size(2), n = A.size(1), nb = (d + CB - 1) / CB;
  const T *pu = u.data_ptr<T>(), *pd = dt.data_ptr<T>(), *pz = z.data_ptr<T>(), *pA = A.data_ptr<T>(),
          *pB = B.data_ptr<T>(), *pC = C.data_ptr<T>(), *pD = D.data_ptr<T>(), *pb = dt_bias.data_ptr<T>(),
          *pgy = gy.data_ptr<T>();
  T *pgz = gz.data_ptr<T>(), *pgu = gu.data_ptr<T>(), *pgdt = gdt.data_ptr<T>(), *pgA = gA.data_ptr<T>(),
    *pgB = gB.data_ptr<T>(), *pgC = gC.data_ptr<T>(), *pgD = gD.data_ptr<T>(), *pgb = gbias.data_ptr<T>();
  auto tiles = [&](int64_t w0, int64_t w1, int64_t slot) {
    std::vector<T> U(CB * l), Pb(CB * l), Z(CB * l), GY(CB * l), GU(CB * l), GD(CB * l), GZ(CB * l);
    std::vector<T> Dl(CB * l), dP(CB * l), SZ(CB * l);
    std::vector<T> H(l * n), E(l * n), Yl(l), h(n), g(n);
    for (int64_t w = w0; w < w1; ++w) {
      const int64_t bi = w / nb, c0 = (w % nb) * CB, cb = std::min(CB, d - c0);
      gather(pu + bi * u.stride(0) + c0, u.stride(1), cb, l, U.data());
      gather(pd + bi * dt.stride(0) + c0, dt.stride(1), cb, l, Pb.data(), pb + c0);
      gather(pz + bi * z.stride(0) + c0, z.stride(1), cb, l, Z.data());
      gather(pgy + bi * gy.stride(0) + c0, gy.stride(1), cb, l, GY.data());
      softplus_tile(Pb.data(), cb * l, Dl.data(), dP.data());
      sigmoid_tile(Z.data(), cb * l, SZ.data());
      const T *Bb = pB + bi * B.stride(0), *Cb = pC + bi * C.stride(0);
      for (int64_t j = 0; j < cb; ++j) {
        const int64_t c = c0 + j, o = j * l;
        gated_row_fwd<T, true>(U.data() + o, Dl.data() + o, Z.data() + o, SZ.data() + o, pA + c * n, Bb, Cb, B.stride(1),
                               C.stride(1), pD[c], n, l, h.data(), nullptr, H.data(), E.data(), Yl.data());
        const auto sums = gated_row_bwd<T>(
            U.data() + o, Dl.data() + o, dP.data() + o, Z.data() + o, SZ.data() + o, pA + c * n, Bb, Cb, B.stride(1),
            C.stride(1), pD[c], n, l,
            H.data(), E.data(), Yl.data(), GY.data() + o, g.data(), GU.data() + o, GD.data() + o, GZ.data() + o,
            pgA + (bi * d + c) * n, pgB + (slot * b + bi) * l * n, pgC + (slot * b + bi) * l * n);
        pgD[bi * d + c] = sums.first; pgb[bi * d + c] = sums.second;
      }
      scatter(GU.data(), cb, l, pgu + bi * l * d + c0, d);
      scatter(GD.data(), cb, l, pgdt + bi * l * d + c0, d);
      scatter(GZ.data(), cb, l, pgz + bi * gz.stride(0) + c0, gz.stride(1));
    }
  };
  if (!shared)
    at::parallel_for(0, b, 1, [&](int64_t b0, int64_t b1) { tiles(b0 * nb, b1 * nb, 0); });
  else
    at::parallel_for(0, b * nb, 1, [&](int64_t w0, int64_t w1) { tiles(w0, w1, at::get_thread_num()); });
}

// gz is written into `gz` (strided like z); returns gu, gdt (b, l, d), gA (d, n), gB, gC (b, l, n), gD,
// gdt_bias (d).
std::vector<torch::Tensor> gated_scan_bwd(torch::Tensor u, torch::Tensor dt, torch::Tensor z, torch::Tensor A,
                                          torch::Tensor B, torch::Tensor C, torch::Tensor D,
                                          torch::Tensor dt_bias, torch::Tensor gy, torch::Tensor gz) {
  const int64_t b = u.size(0), l = u.size(1), d = u.size(2), n = A.size(1);
  const int64_t nt = at::get_num_threads(); const bool shared = b < nt; const int64_t slots = shared ? nt : 1;
  auto gu = torch::empty({b, l, d}, u.options()), gdt = torch::empty({b, l, d}, u.options());
  auto gA = torch::zeros({b, d, n}, u.options()), gD = torch::zeros({b, d}, u.options());
  auto gbias = torch::zeros({b, d}, u.options());
  auto gB = torch::zeros({slots, b, l, n}, u.options()), gC = torch::zeros({slots, b, l, n}, u.options());
  AT_DISPATCH_FLOATING_TYPES(u.scalar_type(), "gated_scan_bwd", [&] {
    gated_scan_bwd_impl<scalar_t>(u, dt, z, A, B, C, D, dt_bias, gy, gz, gu, gdt, gA, gB, gC, gD, gbias, shared);
  });
  return {gu, gdt, gA.sum(0), gB.sum(0), gC.sum(0), gD.sum(0), gbias.sum(0)};
}
