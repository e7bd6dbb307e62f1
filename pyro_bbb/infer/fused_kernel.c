/* The fused sites' per-weight work in one pass each way (fused_kernel.py drives it).

   forward, for every weight i of the sites under one prior and particles k < K:
     σ = softplus(ρ) = max(ρ, 0) + log1p(e^{−|ρ|}),   w = μ + σ ε,
     *complexity = Σ (−½ ε² − log σ − ½ log 2π) − Σ log p(w)      (partial sums in double)
   backward, given g = ∂L/∂w and γ = ∂L/∂complexity, with d = g − γ (log p)'(w):
     ∂L/∂μ = Σ_k d,   ∂L/∂ρ = (Σ_k d ε − γ K / σ) sigmoid(ρ).
   prior: kind 0 Normal(m, s), params (m, s); kind 1 scale mixture, params (c_a, h_a, dc, dh):
     log p = c_a − h_a w² + softplus(t), t = max(dc − dh w², −80),
     slope −2w (h_a + dh sigmoid(t)) = −2w (h_a sigmoid(−t) + h_b sigmoid(t)), h_b = h_a + dh.
   ε: drawn here (counter-based, see normal_block) or passed in.
   exp, log and cos are written out as polynomials (Cephes-style) so every loop vectorises
   without library calls; built with -ffast-math -fno-finite-math-only, so NaN and inf still
   propagate (a NaN ρ or μ gives a NaN complexity and w, as in torch). */

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define CHUNK 2048
#define HALF_LOG_2PI 0.91893853320467274178

static inline float bits_to_float(uint32_t i) { float f; memcpy(&f, &i, 4); return f; }
static inline uint32_t float_to_bits(float f) { uint32_t i; memcpy(&i, &f, 4); return i; }

/* max(x, lo) that keeps a NaN x (fmaxf would drop it) */
static inline float at_least(float x, float lo) { return x < lo ? lo : x; }

/* e^x for x <= 0 (below −80 it returns e^−80 ≈ 2e−35, far from subnormal floats):
   x = n ln 2 + r, |r| <= ½ ln 2, e^r by its degree-6 Taylor polynomial (relative error
   < 3e−7) */
static inline float exp_nonpositive(float x) {
  x = at_least(x, -80.f);
  const float n = rintf(x * 1.44269504088896341f);
  const float r = (x - n * 0.693359375f) + n * 2.12194440e-4f;
  const float p = 1.f + r * (1.f + r * (0.5f + r * (1.66666672e-1f + r * (4.16666679e-2f
                  + r * (8.33333377e-3f + r * 1.38888892e-3f)))));
  return p * bits_to_float((uint32_t)((int32_t)n + 127) << 23);
}

/* log x for x > 0: x = 2^k m with m in [√½, √2), log m by Cephes' logf polynomial; NaN and
   +inf are returned as they are */
static inline float log_positive(float x) {
  const uint32_t bits = float_to_bits(x);
  const int32_t k = (int32_t)(bits - 0x3f3504f3u) >> 23;
  const float f = bits_to_float(bits - ((uint32_t)k << 23)) - 1.f, z = f * f;
  float y = 7.0376836292e-2f;
  y = y * f - 1.1514610310e-1f;
  y = y * f + 1.1676998740e-1f;
  y = y * f - 1.2420140846e-1f;
  y = y * f + 1.4249322787e-1f;
  y = y * f - 1.6668057665e-1f;
  y = y * f + 2.0000714765e-1f;
  y = y * f - 2.4999993993e-1f;
  y = y * f + 3.3333331174e-1f;
  y = y * f * z - 2.12194440e-4f * (float)k - 0.5f * z;
  const float result = f + y + 0.693359375f * (float)k;
  return x == x && x < INFINITY ? result : x;
}

/* cos 2πu for finite u: a = |u − round(u)| in [0, ½]; with b = min(a, ½ − a) in [0, ¼] and
   x = 2π b, cos 2πa = ±cos x, and cos x = cos x (b <= ⅛) or sin(π/2 − x) (b > ⅛), each by its
   Taylor polynomial on [0, π/4] (error < 3e−8) */
static inline float cos_2pi(float u) {
  const float a = fabsf(u - rintf(u)), b = a < 0.25f ? a : 0.5f - a;
  const float sign = a < 0.25f ? 1.f : -1.f;
  const float x = 6.28318530717958648f * (b < 0.125f ? b : 0.25f - b), x2 = x * x;
  const float c = 1.f + x2 * (-0.5f + x2 * (4.16666667e-2f + x2 * (-1.38888889e-3f
                  + x2 * (2.48015873e-5f - x2 * 2.75573192e-7f))));
  const float s = x * (1.f + x2 * (-1.66666667e-1f + x2 * (8.33333333e-3f
                  + x2 * (-1.98412698e-4f + x2 * 2.75573192e-6f))));
  return sign * (b < 0.125f ? c : s);
}

/* log(1 + e) for e in [0, 1]: 2 atanh(f), f = e / (2 + e) <= 1/3, series to f^11 (relative
   error < 2e−7); exact to float precision for tiny e. The series takes f² of max(f, 1e−15),
   which changes nothing in float but keeps f² from underflowing: a subnormal result costs a
   microcode assist of ~100 cycles, and with e = e^−80 that would be most weights of a narrow
   scale-mixture component. The max is taken on the bits (f >= 0) so that -ffast-math cannot
   turn it back into a select after squaring f. */
static inline float log1p_unit(float e) {
  const float f = e / (2.f + e);
  const uint32_t bits = float_to_bits(f), floor_bits = 0x26901d7du; /* 1e−15f */
  const float bounded = bits_to_float(bits > floor_bits ? bits : floor_bits);
  const float f2 = bounded * bounded;
  return 2.f * f * (1.f + f2 * (0.333333343f + f2 * (0.2f + f2 * (0.142857149f
         + f2 * (0.111111112f + f2 * 0.0909090936f)))));
}

int pyro_bbb_kernel_version(void) { return 9; }

/* N(0, 1) noise as a pure function of (seed, counter): SplitMix64's finaliser on
   seed + counter·γ gives 64 random bits u0 = (hi + ½) 2⁻³², u1 = lo 2⁻³², and Box-Muller gives
   two independent draws r cos θ, r sin θ, r = sqrt(−2 log u0), θ = 2π u1 (|z| ≤ 6.8). */
static inline uint64_t mix64(uint64_t seed, uint64_t counter) {
  uint64_t z = seed + counter * 0x9e3779b97f4a7c15ULL;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

static inline float radius(uint64_t z) {
  const float u0 = ((float)(uint32_t)(z >> 32) + 0.5f) * 2.3283064365386963e-10f;
  const float r2 = -2.f * log_positive(u0); /* u0 rounded to 1: a tiny negative log */
  return sqrtf(r2 < 0.f ? 0.f : r2);
}

/* u1 = lo 2⁻³² in [0, 1): the angle is 2π u1 */
static inline float turn(uint64_t z) { return (float)(uint32_t)z * 2.3283064365386963e-10f; }

/* Fill out[0, len) with draws for block `block`: entries p and half + p share pair p
   (cos and sin), half = len / 2; an odd last entry takes the cosine of pair `half`. */
static inline void normal_block(uint64_t seed, uint64_t block, int64_t len,
                                float *restrict out) {
  const int64_t half = len / 2;
  const uint64_t first = block * (CHUNK / 2 + 1);
#pragma omp simd
  for (int64_t p = 0; p < half; p++) {
    const uint64_t z = mix64(seed, first + (uint64_t)p);
    const float r = radius(z), u = turn(z);
    out[p] = r * cos_2pi(u);
    out[half + p] = r * cos_2pi(u - 0.25f);  /* sin 2πu */
  }
  if (len % 2) {
    const uint64_t z = mix64(seed, first + (uint64_t)half);
    out[len - 1] = radius(z) * cos_2pi(turn(z));
  }
}

/* n draws in blocks of CHUNK: entry j is a function of (seed, j) alone */
void pyro_bbb_normal(int64_t n, uint64_t seed, float *restrict out, int num_threads) {
  const int64_t blocks = (n + CHUNK - 1) / CHUNK;
#pragma omp parallel for num_threads(num_threads) schedule(dynamic, 4)
  for (int64_t b = 0; b < blocks; b++) {
    const int64_t begin = b * CHUNK, len = begin + CHUNK < n ? CHUNK : n - begin;
    normal_block(seed, (uint64_t)b, len, out + begin);
  }
}

/* log p(w) and (log p)'(w) of each prior (q: Normal m, 1/s², 0, 0, 0; mixture c_a, h_a, dc,
   dh, h_b = h_a + dh);
   the Normal's −log s − ½ log 2π is added once at the end */
static inline float log_p_normal(float q0, float q1, float q2, float q3, float q4, float v) {
  const float c = v - q0;
  (void)q2, (void)q3, (void)q4;
  return -0.5f * c * c * q1;
}

static inline float slope_normal(float q0, float q1, float q2, float q3, float q4, float v) {
  (void)q2, (void)q3, (void)q4;
  return (q0 - v) * q1;
}

static inline float log_p_mixture(float q0, float q1, float q2, float q3, float q4, float v) {
  const float v2 = v * v, t = at_least(q2 - q3 * v2, -80.f);
  (void)q4;
  return q0 - q1 * v2 + (t > 0.f ? t : 0.f) + log1p_unit(exp_nonpositive(-fabsf(t)));
}

/* −2w (h_a + dh sigmoid(t)) = −2w (h_a sigmoid(−t) + h_b sigmoid(t)), h_b = h_a + dh = q4:
   two positive terms, no cancellation when the components' 1/(2σ²) differ by orders */
static inline float slope_mixture(float q0, float q1, float q2, float q3, float q4, float v) {
  const float t = at_least(q2 - q3 * v * v, -80.f), et = exp_nonpositive(-fabsf(t));
  const float inv_t = 1.f / (1.f + et), sig_t = t >= 0.f ? inv_t : et * inv_t;
  const float sig_minus_t = t >= 0.f ? et * inv_t : inv_t;
  (void)q0;
  return -2.f * v * (q1 * sig_minus_t + q4 * sig_t);
}

/* σ = softplus(ρ) = max(ρ, 0) + log1p(e^{−|ρ|}); with *sig = sigmoid(ρ) when asked */
static inline float softplus_sigmoid(float r, float *sig) {
  const float e = exp_nonpositive(-fabsf(r)), inv = 1.f / (1.f + e);
  *sig = r >= 0.f ? inv : e * inv;
  return (r > 0.f ? r : 0.f) + log1p_unit(e);
}

/* The sites are segments s of sizes n_s with their own μ_s, ρ_s (and gradients); ε and w are
   one buffer, segment s at offset K·(n_0 + … + n_{s−1}), particle k's row at + k n_s. Work is
   split into chunks of at most CHUNK entries of one segment, handed to threads dynamically. */
typedef struct {
  int64_t count, *segment, *begin, *offset;
  double *partial; /* the forward's three sums per chunk, added in chunk order at the end */
} chunks_t;

static int make_chunks(int64_t nseg, const int64_t *sizes, int64_t num_particles,
                       chunks_t *ch) {
  int64_t total = 0, offset = 0;
  for (int64_t s = 0; s < nseg; s++) total += (sizes[s] + CHUNK - 1) / CHUNK;
  ch->count = total;
  ch->segment = malloc(3 * (size_t)(total > 0 ? total : 1) * sizeof(int64_t));
  ch->partial = malloc(3 * (size_t)(total > 0 ? total : 1) * sizeof(double));
  if (!ch->segment || !ch->partial) {
    free(ch->segment), free(ch->partial);
    return 0;
  }
  ch->begin = ch->segment + total;
  ch->offset = ch->begin + total;
  for (int64_t s = 0, t = 0; s < nseg; s++) {
    for (int64_t b = 0; b < sizes[s]; b += CHUNK, t++) {
      ch->segment[t] = s, ch->begin[t] = b, ch->offset[t] = offset;
    }
    offset += num_particles * sizes[s];
  }
  return 1;
}

/* Forward: w = μ + σ ε and the sums of ε², log σ and log p(w) (float partial sums per chunk,
   added in double in chunk order: the same result whatever the threads); the backward
   recomputes σ, sigmoid(ρ) and the prior's slope from ρ and w, which costs less than storing
   and reloading them. */
#define DEFINE_FORWARD(NAME, LOG_P)                                                           \
  static void NAME(const chunks_t *ch, const int64_t *sizes, const float *const *locs,       \
                   const float *const *rhos, int64_t num_particles, float *eps, float *value, \
                   const float q0, const float q1, const float q2, const float q3,           \
                   const float q4,                                                           \
                   const int generate, const uint64_t seed, double *sums, int num_threads) { \
    _Pragma("omp parallel for num_threads(num_threads) schedule(dynamic, 4)")                \
    for (int64_t t = 0; t < ch->count; t++) {                                                 \
      const int64_t s = ch->segment[t], n = sizes[s], begin = ch->begin[t];                   \
      const int64_t end = begin + CHUNK < n ? begin + CHUNK : n;                              \
      const float *restrict loc = locs[s], *restrict rho = rhos[s];                           \
      float part_sq = 0.f, part_ls = 0.f, part_lp = 0.f;                                      \
      for (int64_t k = 0; k < num_particles; k++) {                                           \
        float *restrict x = eps + ch->offset[t] + k * n;                                      \
        float *restrict w = value + ch->offset[t] + k * n;                                    \
        if (generate)                                                                         \
          normal_block(seed, (uint64_t)(t * num_particles + k), end - begin, x + begin);      \
        _Pragma("omp simd reduction(+ : part_sq, part_ls, part_lp)")                          \
        for (int64_t i = begin; i < end; i++) {                                               \
          float unused;                                                                       \
          const float scale = softplus_sigmoid(rho[i], &unused);                              \
          const float v = loc[i] + scale * x[i];                                              \
          w[i] = v;                                                                           \
          part_ls += log_positive(scale);                                                     \
          part_sq += x[i] * x[i];                                                             \
          part_lp += LOG_P(q0, q1, q2, q3, q4, v);                                            \
        }                                                                                     \
      }                                                                                       \
      ch->partial[3 * t] = part_sq;                                                           \
      ch->partial[3 * t + 1] = part_ls;                                                       \
      ch->partial[3 * t + 2] = part_lp;                                                       \
    }                                                                                         \
    sums[0] = sums[1] = sums[2] = 0.0;                                                        \
    for (int64_t t = 0; t < ch->count; t++)                                                   \
      for (int j = 0; j < 3; j++) sums[j] += ch->partial[3 * t + j];                          \
  }

/* Backward: d = g − γ (log p)'(w), ∂L/∂μ = Σ_k d, ∂L/∂ρ = (Σ_k d ε − γ K / σ) sigmoid(ρ) */
#define DEFINE_BACKWARD(NAME, SLOPE)                                                          \
  static void NAME(const chunks_t *ch, const int64_t *sizes, const float *const *rhos,       \
                   const float *const *grads, int64_t num_particles, const float *eps,       \
                   const float *value, const float gamma, const float q0, const float q1,    \
                   const float q2, const float q3, const float q4, float *const *grad_locs,  \
                   float *const *grad_rhos, int num_threads) {                               \
    const float gamma_k = gamma * (float)num_particles;                                       \
    _Pragma("omp parallel for num_threads(num_threads) schedule(dynamic, 4)")                \
    for (int64_t t = 0; t < ch->count; t++) {                                                 \
      const int64_t s = ch->segment[t], n = sizes[s], begin = ch->begin[t];                   \
      const int64_t end = begin + CHUNK < n ? begin + CHUNK : n;                              \
      const float *restrict x = eps + ch->offset[t], *restrict w = value + ch->offset[t];     \
      const float *restrict g = grads[s], *restrict rho = rhos[s];                            \
      float *restrict grad_loc = grad_locs[s], *restrict grad_rho = grad_rhos[s];             \
      _Pragma("omp simd")                                                                     \
      for (int64_t i = begin; i < end; i++) {                                                 \
        const float d = g[i] - gamma * SLOPE(q0, q1, q2, q3, q4, w[i]);                       \
        grad_loc[i] = d;                                                                      \
        grad_rho[i] = d * x[i];                                                               \
      }                                                                                       \
      for (int64_t k = 1; k < num_particles; k++) {                                           \
        _Pragma("omp simd")                                                                   \
        for (int64_t i = begin; i < end; i++) {                                               \
          const int64_t j = k * n + i;                                                        \
          const float d = g[j] - gamma * SLOPE(q0, q1, q2, q3, q4, w[j]);                     \
          grad_loc[i] += d;                                                                   \
          grad_rho[i] += d * x[j];                                                            \
        }                                                                                     \
      }                                                                                       \
      _Pragma("omp simd")                                                                     \
      for (int64_t i = begin; i < end; i++) {                                                 \
        float sig;                                                                            \
        const float scale = softplus_sigmoid(rho[i], &sig);                                   \
        grad_rho[i] = (grad_rho[i] - gamma_k / scale) * sig;                                  \
      }                                                                                       \
    }                                                                                         \
  }

DEFINE_FORWARD(forward_normal, log_p_normal)
DEFINE_FORWARD(forward_mixture, log_p_mixture)
DEFINE_BACKWARD(backward_normal, slope_normal)
DEFINE_BACKWARD(backward_mixture, slope_mixture)

/* the prior's numbers as the q of the functions above (mixture: c_a, h_a, dc, dh, h_b) */
static void prior_numbers(int kind, const double *params, float *q) {
  if (kind == 0) {
    q[0] = (float)params[0], q[1] = (float)(1.0 / (params[1] * params[1]));
    q[2] = q[3] = q[4] = 0.f;
  } else {
    for (int i = 0; i < 4; i++) q[i] = (float)params[i];
    q[4] = (float)(params[1] + params[3]); /* h_b, summed in double */
  }
}

/* *complexity = Σ (−½ ε² − log σ − ½ log 2π) − Σ log p(w); generate: first draw ε (the
   noise of `seed`, chunk by chunk) into eps. Returns 0 when out of memory. */
int pyro_bbb_forward(int64_t nseg, const int64_t *sizes, const float *const *locs,
                     const float *const *rhos, int64_t num_particles, float *eps, uint64_t seed,
                     int generate, float *value, int kind, const double *params,
                     float *complexity, int num_threads) {
  chunks_t ch;
  double sums[3];
  float q[5];
  if (!make_chunks(nseg, sizes, num_particles, &ch)) return 0;
  prior_numbers(kind, params, q);
  if (kind == 0)
    forward_normal(&ch, sizes, locs, rhos, num_particles, eps, value, q[0], q[1], q[2], q[3], q[4],
                   generate, seed, sums, num_threads);
  else
    forward_mixture(&ch, sizes, locs, rhos, num_particles, eps, value, q[0], q[1], q[2], q[3], q[4],
                    generate, seed, sums, num_threads);
  free(ch.segment), free(ch.partial);
  int64_t n = 0;
  for (int64_t s = 0; s < nseg; s++) n += sizes[s];
  const double count = (double)n * (double)num_particles;
  double sum_log_p = sums[2];
  if (kind == 0) sum_log_p -= count * (log(params[1]) + HALF_LOG_2PI);
  *complexity = (float)(-0.5 * sums[0] - sums[1] - count * HALF_LOG_2PI - sum_log_p);
  return 1;
}

int pyro_bbb_backward(int64_t nseg, const int64_t *sizes, const float *const *rhos,
                      const float *const *grads, int64_t num_particles, const float *eps,
                      const float *value, float gamma, int kind, const double *params,
                      float *const *grad_locs, float *const *grad_rhos, int num_threads) {
  chunks_t ch;
  float q[5];
  if (!make_chunks(nseg, sizes, num_particles, &ch)) return 0;
  prior_numbers(kind, params, q);
  if (kind == 0)
    backward_normal(&ch, sizes, rhos, grads, num_particles, eps, value, gamma, q[0], q[1], q[2],
                    q[3], q[4], grad_locs, grad_rhos, num_threads);
  else
    backward_mixture(&ch, sizes, rhos, grads, num_particles, eps, value, gamma, q[0], q[1],
                     q[2], q[3], q[4], grad_locs, grad_rhos, num_threads);
  free(ch.segment), free(ch.partial);
  return 1;
}
