// The selective scan of S6 on the CPU, forward and backward, each one pass over the sequence with
// every intermediate kept in the cache. Built at first use by worldsim/models/selective_scan_kernel.py
// (torch.utils.cpp_extension.load); the maths and the shapes are selective_scan.py's:
//
//   h[t] = exp(delta[t] * A) * h[t - 1] + delta[t] * u[t] * B[t]      y[t] = C[t] . h[t] + D * u[t]
//
// u, delta, y: float[N, L, E]; At (A transposed): float[S, E]; B, C: float[N, L, S]; D: float[E];
// states h: float[N, S, E] (channels innermost, so every inner loop below runs along contiguous
// channels and the compiler vectorises it, expf included, through glibc's vector maths).
// Sequences are independent: they are split among torch's intra-op threads. With `softplus`, the
// kernel reads delta before its softplus and applies it on the fly (mamba-ssm's delta_softplus):
// one pass over delta fewer each way.

#include <torch/extension.h>
#include <ATen/Parallel.h>

#include <cmath>
#include <cstring>
#include <vector>

namespace {

// softplus(x) = log(1 + exp(x)), and x itself past 20 (where they agree to float precision).
inline float softplus(float x) { return x > 20.0f ? x : log1pf(expf(x)); }

// One time step's delta (float[E]) into dt: as given, or through its softplus.
inline void step_delta(const float* raw, bool apply_softplus, int64_t E, float* dt) {
  if (apply_softplus) {
#pragma omp simd
    for (int64_t e = 0; e < E; ++e) dt[e] = softplus(raw[e]);
  } else {
    std::memcpy(dt, raw, E * sizeof(float));
  }
}

void check(const torch::Tensor& t, const char* name, int64_t dims) {
  TORCH_CHECK(t.device().is_cpu() && t.scalar_type() == torch::kFloat32 && t.is_contiguous() && t.dim() == dims,
              "selective scan kernel: ", name, " must be a contiguous float32 CPU tensor of ", dims, " dimensions");
}

// One sequence's states from h0 (or zeros), written to H[0..L] (H[0] = h0), the decays to
// Adecay[0..L) and the time steps (delta, through its softplus if asked) to DT[0..L).
void states(const float* u, const float* delta, bool apply_softplus, const float* At, const float* B, const float* h0, int64_t L,
            int64_t S, int64_t E, float* H, float* Adecay, float* DT) {
  const int64_t SE = S * E;
  if (h0) std::memcpy(H, h0, SE * sizeof(float)); else std::memset(H, 0, SE * sizeof(float));
  for (int64_t t = 0; t < L; ++t) {
    float* dt = DT + t * E;
    step_delta(delta + t * E, apply_softplus, E, dt);
    const float* ut = u + t * E; const float* Bt = B + t * S;
    const float* prev = H + t * SE; float* next = H + (t + 1) * SE; float* at = Adecay + t * SE;
    for (int64_t s = 0; s < S; ++s) {
      const float b = Bt[s]; const float* As = At + s * E;
      const float* ps = prev + s * E; float* ns = next + s * E; float* as = at + s * E;
#pragma omp simd
      for (int64_t e = 0; e < E; ++e) {
        const float a = expf(dt[e] * As[e]);
        as[e] = a;
        ns[e] = a * ps[e] + dt[e] * ut[e] * b;
      }
    }
  }
}

}  // namespace

// (y, last state) from the inputs; nothing is kept: backward recomputes the states.
std::vector<torch::Tensor> scan_forward(torch::Tensor u, torch::Tensor delta, torch::Tensor At, torch::Tensor B,
                                        torch::Tensor C, torch::Tensor D, c10::optional<torch::Tensor> h0, bool apply_softplus) {
  check(u, "u", 3); check(delta, "delta", 3); check(At, "At", 2); check(B, "B", 3); check(C, "C", 3); check(D, "D", 1);
  const int64_t N = u.size(0), L = u.size(1), E = u.size(2), S = At.size(0);
  if (h0) check(*h0, "initial state", 3);
  auto y = torch::empty_like(u);
  auto last = torch::empty({N, S, E}, u.options());
  const float *up = u.data_ptr<float>(), *dp = delta.data_ptr<float>(), *Ap = At.data_ptr<float>();
  const float *Bp = B.data_ptr<float>(), *Cp = C.data_ptr<float>(), *Dp = D.data_ptr<float>();
  const float* hp = h0 ? h0->data_ptr<float>() : nullptr;
  float *yp = y.data_ptr<float>(), *lp = last.data_ptr<float>();
  at::parallel_for(0, N, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> dt_buffer(E);
    float* dt = dt_buffer.data();
    for (int64_t n = begin; n < end; ++n) {
      float* h = lp + n * S * E;  // the running state lives where the last state goes
      if (hp) std::memcpy(h, hp + n * S * E, S * E * sizeof(float)); else std::memset(h, 0, S * E * sizeof(float));
      for (int64_t t = 0; t < L; ++t) {
        const int64_t row = n * L + t;
        step_delta(dp + row * E, apply_softplus, E, dt);
        const float* ut = up + row * E;
        const float* Bt = Bp + row * S; const float* Ct = Cp + row * S; float* yt = yp + row * E;
#pragma omp simd
        for (int64_t e = 0; e < E; ++e) yt[e] = Dp[e] * ut[e];
        for (int64_t s = 0; s < S; ++s) {
          const float b = Bt[s], c = Ct[s]; const float* As = Ap + s * E; float* hs = h + s * E;
#pragma omp simd
          for (int64_t e = 0; e < E; ++e) {
            const float hv = expf(dt[e] * As[e]) * hs[e] + dt[e] * ut[e] * b;
            hs[e] = hv;
            yt[e] += hv * c;
          }
        }
      }
    }
  });
  return {y, last};
}

// Gradients of (u, delta, At, B, C, D, h0) from dy and dlast, sequence by sequence: the states
// recomputed into a buffer, then the reverse-time scan g[t] = C[t] dy[t] + a[t + 1] g[t + 1].
std::vector<torch::Tensor> scan_backward(torch::Tensor u, torch::Tensor delta, torch::Tensor At, torch::Tensor B,
                                         torch::Tensor C, torch::Tensor D, c10::optional<torch::Tensor> h0, bool apply_softplus,
                                         torch::Tensor dy, torch::Tensor dlast) {
  check(dy, "dy", 3); check(dlast, "dlast", 3);
  const int64_t N = u.size(0), L = u.size(1), E = u.size(2), S = At.size(0), SE = S * E;
  auto du = torch::empty_like(u), ddelta = torch::empty_like(u);
  auto dB = torch::empty_like(B), dC = torch::empty_like(C);
  auto dh0 = torch::empty({N, S, E}, u.options());
  // Per-thread partial sums of the shared parameters' gradients, summed at the end.
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(at::get_num_threads(), N));
  auto dAt_parts = torch::zeros({parts, S, E}, u.options());
  auto dD_parts = torch::zeros({parts, E}, u.options());
  const float *up = u.data_ptr<float>(), *dp = delta.data_ptr<float>(), *Ap = At.data_ptr<float>();
  const float *Bp = B.data_ptr<float>(), *Cp = C.data_ptr<float>(), *Dp = D.data_ptr<float>();
  const float* hp = h0 ? h0->data_ptr<float>() : nullptr;
  const float *dyp = dy.data_ptr<float>(), *dlp = dlast.data_ptr<float>();
  float *dup = du.data_ptr<float>(), *ddp = ddelta.data_ptr<float>(), *dBp = dB.data_ptr<float>(), *dCp = dC.data_ptr<float>();
  float *dhp = dh0.data_ptr<float>(), *dAp = dAt_parts.data_ptr<float>(), *dDp = dD_parts.data_ptr<float>();
  at::parallel_for(0, parts, 1, [&](int64_t part_begin, int64_t part_end) {
    std::vector<float> H((L + 1) * SE), Adecay(L * SE), DT(L * E), gdrive(E), gdd(E);
    for (int64_t part = part_begin; part < part_end; ++part) {
      float* dA = dAp + part * SE; float* dDl = dDp + part * E;
      for (int64_t n = part * N / parts; n < (part + 1) * N / parts; ++n) {
        const int64_t base = n * L;
        states(up + base * E, dp + base * E, apply_softplus, Ap, Bp + base * S, hp ? hp + n * SE : nullptr, L, S, E, H.data(),
               Adecay.data(), DT.data());
        float* g = dhp + n * SE;  // dL/dh, carried backwards in time; after t = 0 it is dL/dh0
        std::memcpy(g, dlp + n * SE, SE * sizeof(float));
        for (int64_t t = L - 1; t >= 0; --t) {
          const int64_t row = base + t;
          const float* dt = DT.data() + t * E;
          const float* ut = up + row * E; const float* dyt = dyp + row * E; const float* raw = dp + row * E;
          const float* Bt = Bp + row * S; const float* Ct = Cp + row * S;
          const float* prev = H.data() + t * SE; const float* cur = H.data() + (t + 1) * SE; const float* at = Adecay.data() + t * SE;
          std::fill(gdrive.begin(), gdrive.end(), 0.0f);
          std::fill(gdd.begin(), gdd.end(), 0.0f);
          float* gd = gdrive.data(); float* gq = gdd.data();
          for (int64_t s = 0; s < S; ++s) {
            const float b = Bt[s], c = Ct[s]; const float* As = Ap + s * E; float* dAs = dA + s * E;
            const float *ps = prev + s * E, *cs = cur + s * E, *as = at + s * E; float* gs = g + s * E;
            float dc = 0.0f, db = 0.0f;
#pragma omp simd reduction(+ : dc, db)
            for (int64_t e = 0; e < E; ++e) {
              const float gv = gs[e] + c * dyt[e];  // dL/dh[t]
              dc += cs[e] * dyt[e];
              db += gv * dt[e] * ut[e];
              gd[e] += gv * b;
              const float decay_grad = gv * as[e] * ps[e];  // dL/d(delta A)
              gq[e] += decay_grad * As[e];
              dAs[e] += decay_grad * dt[e];
              gs[e] = gv * as[e];  // dL/dh[t - 1] through the decay
            }
            dCp[row * S + s] = dc;
            dBp[row * S + s] = db;
          }
          float* dut = dup + row * E; float* ddt = ddp + row * E;
#pragma omp simd
          for (int64_t e = 0; e < E; ++e) {
            // through the softplus: d softplus(x) / dx = sigmoid(x) = 1 - exp(-softplus(x))
            const float through = apply_softplus ? (raw[e] > 20.0f ? 1.0f : -expm1f(-dt[e])) : 1.0f;
            ddt[e] = (gq[e] + gd[e] * ut[e]) * through;
            dut[e] = gd[e] * dt[e] + Dp[e] * dyt[e];
            dDl[e] += dyt[e] * ut[e];
          }
        }
      }
    }
  });
  return {du, ddelta, dAt_parts.sum(0), dB, dC, dD_parts.sum(0), dh0};
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.def("forward", &scan_forward, "selective scan, forward (CPU)");
  m.def("backward", &scan_backward, "selective scan, backward (CPU)");
}
