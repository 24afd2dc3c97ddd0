/* The mirror-symmetry simulation's sweeps as one fused CPU loop (float32), built by kernel.py.

   It computes what sim.py's loss_and_gradients and optimizers compute, network by network, with
   the work arranged for a 2-core CPU:
   - 16 networks ("lanes") are simulated together as one SIMD vector, for all requested sweeps,
     so their weights never leave registers and L1 between sweeps.
   - The inputs are binary, so a hidden unit's 64 net inputs are subset sums of its 6 weights
     plus the bias, built in 63 additions (a doubling tree) instead of 64 x 6 multiply-adds.
   - Likewise exp(-c * net input) is a product of the 7 factors exp(-c * weight): 7 exponentials
     and 63 multiplications per hidden unit instead of 64 exponentials. A network whose factors
     could overflow or underflow float32 (c * (|bias| + sum |weights|) > 80) takes the direct
     exponentials instead; the choice is per network, so a network's arithmetic never depends on
     the networks beside it.
   - In reverse, a hidden unit's 6 weight gradients are subset sums of its 64 per-pattern deltas:
     120 additions instead of 384 multiply-adds.
   - exp is an inlined polynomial (within 1 ulp of the exact value), so it vectorises.

   Row layout of the weights (and of the optimizer state), each row `stride` floats with the
   networks contiguous: W1[j][i] at 6j + i, b1[j] at 12 + j, W2[j] at 14 + j, b2 at 16. */

#include <math.h>
#include <stdint.h>

#define LANES 16
#define INPUTS 6
#define PATTERNS 64
#define PARAMETERS 17
#define B1 12
#define W2 14
#define B2 16
/* Largest |c * (bias + subset sum)| for which every partial product of the factors is a normal
   float32 (exp(+-80) is well inside [1.2e-38, 3.4e38]). */
#define SAFE_EXPONENT 80.0f

/* Same order as the Python side's ACTIVATION_CODES and OPTIMIZER_CODES. */
enum { SIGMOID, TANH, HARDSIGMOID, HARDTANH, SILU, RELU };
enum { SGD, RMSPROP, ADAM };

typedef struct {
    int32_t activation;
    int32_t optimizer;
    int32_t threshold_output;
    float lr, momentum, rmsprop_alpha, adam_beta2, eps;
    float loss_weight[PATTERNS]; /* c * w_p: the reduction's factor times the pattern weight */
    float target[PATTERNS];
} Options;

typedef float Lanes[LANES];

/* fast_exp clamps its argument to this range so that 2^k stays normal; for a logistic
   1 / (1 + exp(x)) the clamp changes nothing in float32. It is a variable, not a constant, so that
   the compiler does not specialise the code after the clamp for the two clamped values, which
   duplicated the divisions of the loop below (the slowest instructions in it). */
float mirror_exp_range[2] = {-87.0f, 88.0f};

/* exp(x) in float32 within 1 ulp: x = k ln2 + r with |r| <= ln2/2 (Cody-Waite), Cephes' degree-5
   polynomial for exp(r), and 2^k written into the exponent bits. NaN passes through. */
static inline float fast_exp(float x) {
    const float low = mirror_exp_range[0], high = mirror_exp_range[1];
    x = x > high ? high : x;
    x = x < low ? low : x;
    float k = (x * 1.44269504088896341f + 12582912.0f) - 12582912.0f; /* round to nearest */
    float r = x - k * 0.693359375f;
    r = r + k * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    union { int32_t bits; float value; } scale = {((int32_t)k + 127) << 23};
    return p * scale.value;
}

static inline float logistic(float e) { return 1.0f / (1.0f + e); } /* e = exp(-x) */

/* The 64 subset sums bias + sum of the weights of the inputs that are on. */
static void net_inputs(const float *bias, const Lanes *weights, Lanes *a) {
    for (int l = 0; l < LANES; l++) a[0][l] = bias[l];
    for (int i = INPUTS - 1, size = 1; i >= 0; i--, size *= 2)
        for (int q = 0; q < size; q++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) a[size + q][l] = a[q][l] + weights[i][l];
}

/* The reverse of net_inputs: from the 64 per-pattern deltas of a hidden unit, the gradient of each
   input weight (the sum over the patterns where that input is on) and of the bias (the sum over
   all), in 120 additions: the deltas of patterns differing only in the lowest remaining bit are
   summed pairwise, level by level, and at each level the odd entries (that bit on) give one
   weight's gradient. Overwrites delta. */
static void subset_gradients(Lanes *delta, Lanes *weight_grad, float *bias_grad) {
    for (int i = INPUTS - 1, size = PATTERNS; i >= 0; i--, size /= 2) {
        for (int l = 0; l < LANES; l++) weight_grad[i][l] = delta[1][l];
        for (int q = 3; q < size; q += 2)
#pragma omp simd
            for (int l = 0; l < LANES; l++) weight_grad[i][l] += delta[q][l];
        for (int q = 0; q < size / 2; q++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) delta[q][l] = delta[2 * q][l] + delta[2 * q + 1][l];
    }
    for (int l = 0; l < LANES; l++) bias_grad[l] = delta[0][l];
}

static inline int uses_exp(int activation) {
    return activation == SIGMOID || activation == TANH || activation == SILU;
}

/* Net inputs a[p] of hidden unit j for all 64 patterns (pattern p has input i = bit 5 - i of p;
   only where the activation or a fallback needs them), and for exp-based activations
   e[p] = exp(-c * a[p]) with c = 2 for tanh, else 1. */
static void hidden_net_inputs(const Options *opt, const Lanes *w, int j, Lanes *a, Lanes *e) {
    const Lanes *weights = w + INPUTS * j;
    const int activation = opt->activation;
    if (!uses_exp(activation) || activation == SILU) net_inputs(w[B1 + j], weights, a);
    if (!uses_exp(activation)) return;

    const float c = activation == TANH ? 2.0f : 1.0f;
    Lanes factor[INPUTS], bound;
    int all_safe = 1;
#pragma omp simd
    for (int l = 0; l < LANES; l++) {
        bound[l] = fabsf(w[B1 + j][l]);
        e[0][l] = fast_exp(-c * w[B1 + j][l]);
    }
    for (int i = 0; i < INPUTS; i++)
#pragma omp simd
        for (int l = 0; l < LANES; l++) {
            bound[l] += fabsf(weights[i][l]);
            factor[i][l] = fast_exp(-c * weights[i][l]);
        }
    for (int l = 0; l < LANES; l++) all_safe &= c * bound[l] <= SAFE_EXPONENT; /* NaN: unsafe */
    for (int i = INPUTS - 1, size = 1; i >= 0; i--, size *= 2)
        for (int q = 0; q < size; q++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) e[size + q][l] = e[q][l] * factor[i][l];
    if (all_safe) return;
    if (activation != SILU) net_inputs(w[B1 + j], weights, a);
    for (int p = 0; p < PATTERNS; p++)
#pragma omp simd
        for (int l = 0; l < LANES; l++)
            if (!(c * bound[l] <= SAFE_EXPONENT)) e[p][l] = fast_exp(-c * a[p][l]);
}

/* The hidden unit's output y and slope dy/da from its net input a and e (see above); at kinks
   the derivative autograd uses. */
#define ACTIVATE_SIGMOID(a, e, y, s) y = logistic(e); s = y * (1.0f - y);
#define ACTIVATE_TANH(a, e, y, s) y = 2.0f * logistic(e) - 1.0f; s = 1.0f - y * y;
#define ACTIVATE_HARDSIGMOID(a, e, y, s)                                                     \
    y = (a) <= -3.0f ? 0.0f : (a) >= 3.0f ? 1.0f : (a) / 6.0f + 0.5f;                        \
    s = ((a) > -3.0f && (a) < 3.0f) ? 1.0f / 6.0f : 0.0f;
#define ACTIVATE_HARDTANH(a, e, y, s)                                                        \
    y = (a) < -1.0f ? -1.0f : (a) > 1.0f ? 1.0f : (a);                                       \
    s = ((a) > -1.0f && (a) < 1.0f) ? 1.0f : 0.0f;
#define ACTIVATE_SILU(a, e, y, s)                                                            \
    {                                                                                        \
        float sigma = logistic(e);                                                           \
        y = (a) * sigma;                                                                     \
        s = sigma * (1.0f + (a) * (1.0f - sigma));                                           \
    }
#define ACTIVATE_RELU(a, e, y, s) y = (a) > 0.0f ? (a) : 0.0f; s = (a) > 0.0f ? 1.0f : 0.0f;

/* Forward and backward over the 64 patterns for one activation; gradients into g. */
#define PATTERN_LOOP(ACTIVATE)                                                               \
    for (int p = 0; p < PATTERNS; p++) {                                                     \
        const float lw = opt->loss_weight[p], target = opt->target[p];                       \
        const float wanted = (float)(target > 0.5f);                                         \
        _Pragma("omp simd") for (int l = 0; l < LANES; l++) {                               \
            float y0, s0, y1, s1;                                                            \
            ACTIVATE(a[0][p][l], e[0][p][l], y0, s0)                                         \
            ACTIVATE(a[1][p][l], e[1][p][l], y1, s1)                                         \
            float out = logistic(fast_exp(-(w[B2][l] + w[W2][l] * y0 + w[W2 + 1][l] * y1))); \
            float fired = (float)(out > 0.5f);                                               \
            float seen = threshold ? fired : out;                                            \
            float error = seen - target;                                                     \
            loss[l] += lw * error * error;                                                   \
            correct[l] += (float)(fired == wanted);                                          \
            /* straight-through when thresholding: d(seen)/d(out) is taken as 1 */           \
            float d = 2.0f * lw * error * out * (1.0f - out);                                \
            delta[0][p][l] = d * w[W2][l] * s0;                                              \
            delta[1][p][l] = d * w[W2 + 1][l] * s1;                                          \
            g[W2][l] += d * y0;                                                              \
            g[W2 + 1][l] += d * y1;                                                          \
            g[B2][l] += d;                                                                   \
        }                                                                                    \
    }

/* dE/dw into g (the hidden deltas of every pattern first, summed per weight afterwards), E into loss and the number of correctly classified patterns into correct. */
static void evaluate(const Options *restrict opt, const Lanes *restrict w, Lanes *restrict g,
                     float *restrict loss, float *restrict correct) {
    const int threshold = opt->threshold_output;
    Lanes a[2][PATTERNS], e[2][PATTERNS], delta[2][PATTERNS];
    for (int j = 0; j < 2; j++) hidden_net_inputs(opt, w, j, a[j], e[j]);
    for (int k = 0; k < PARAMETERS; k++)
        for (int l = 0; l < LANES; l++) g[k][l] = 0.0f;
    for (int l = 0; l < LANES; l++) loss[l] = correct[l] = 0.0f;
    switch (opt->activation) {
    case SIGMOID: PATTERN_LOOP(ACTIVATE_SIGMOID) break;
    case TANH: PATTERN_LOOP(ACTIVATE_TANH) break;
    case HARDSIGMOID: PATTERN_LOOP(ACTIVATE_HARDSIGMOID) break;
    case HARDTANH: PATTERN_LOOP(ACTIVATE_HARDTANH) break;
    case SILU: PATTERN_LOOP(ACTIVATE_SILU) break;
    case RELU: PATTERN_LOOP(ACTIVATE_RELU) break;
    }
    for (int j = 0; j < 2; j++) subset_gradients(delta[j], g + INPUTS * j, g[B1 + j]);
}

/* One optimizer step (torch.optim's rules, as sim.py's _sgd, _rmsprop and _adam); `step` counts
   updates from 1. */
static void update(const Options *opt, Lanes *w, Lanes *s0, Lanes *s1, const Lanes *g,
                   int64_t step) {
    const float lr = opt->lr, momentum = opt->momentum;
    if (opt->optimizer == SGD) { /* s0: the paper's dw(t-1) */
        for (int k = 0; k < PARAMETERS; k++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) {
                s0[k][l] = s0[k][l] * momentum - lr * g[k][l];
                w[k][l] += s0[k][l];
            }
    } else if (opt->optimizer == RMSPROP) { /* s0: square average, s1: momentum buffer */
        const float alpha = opt->rmsprop_alpha;
        for (int k = 0; k < PARAMETERS; k++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) {
                s0[k][l] = s0[k][l] * alpha + (1.0f - alpha) * (g[k][l] * g[k][l]);
                s1[k][l] = s1[k][l] * momentum + g[k][l] / (sqrtf(s0[k][l]) + opt->eps);
                w[k][l] -= lr * s1[k][l];
            }
    } else { /* ADAM, s0: first moment, s1: second moment; momentum is beta1 */
        const float beta2 = opt->adam_beta2;
        const float correction1 = 1.0f - powf(momentum, (float)step);
        const float root_correction2 = sqrtf(1.0f - powf(beta2, (float)step));
        const float step_size = lr / correction1;
        for (int k = 0; k < PARAMETERS; k++)
#pragma omp simd
            for (int l = 0; l < LANES; l++) {
                s0[k][l] += (1.0f - momentum) * (g[k][l] - s0[k][l]);
                s1[k][l] = s1[k][l] * beta2 + (1.0f - beta2) * (g[k][l] * g[k][l]);
                w[k][l] -= step_size * s0[k][l] / (sqrtf(s1[k][l]) / root_correction2 + opt->eps);
            }
    }
}

/* `sweeps` sweeps of the networks begin..end-1 (multiples of 16), each: evaluate, mark networks
   that classify all 64 patterns and are not yet marked with the number of updates done so far
   (solved_at), then update -- except the last sweep when update_last is 0, which only evaluates.
   loss and correct receive the last evaluation. state1 may be NULL for sgd. */
void mirror_sweeps(const Options *opt, float *theta, float *state0, float *state1,
                   int64_t *solved_at, float *loss, float *correct, int64_t stride,
                   int64_t begin, int64_t end, int64_t updates_done, int64_t sweeps,
                   int32_t update_last) {
    for (int64_t first = begin; first < end; first += LANES) {
        Lanes w[PARAMETERS], s0[PARAMETERS], s1[PARAMETERS], g[PARAMETERS];
        float block_loss[LANES], block_correct[LANES];
        for (int k = 0; k < PARAMETERS; k++)
            for (int l = 0; l < LANES; l++) {
                w[k][l] = theta[k * stride + first + l];
                s0[k][l] = state0[k * stride + first + l];
                s1[k][l] = state1 ? state1[k * stride + first + l] : 0.0f;
            }
        for (int64_t sweep = 0; sweep < sweeps; sweep++) {
            evaluate(opt, (const Lanes *)w, g, block_loss, block_correct);
            for (int l = 0; l < LANES; l++)
                if (solved_at[first + l] < 0 && block_correct[l] == PATTERNS)
                    solved_at[first + l] = updates_done + sweep;
            if (sweep + 1 < sweeps || update_last)
                update(opt, w, s0, s1, (const Lanes *)g, updates_done + sweep + 1);
        }
        for (int k = 0; k < PARAMETERS; k++)
            for (int l = 0; l < LANES; l++) {
                theta[k * stride + first + l] = w[k][l];
                state0[k * stride + first + l] = s0[k][l];
                if (state1) state1[k * stride + first + l] = s1[k][l];
            }
        for (int l = 0; l < LANES; l++) {
            loss[first + l] = block_loss[l];
            correct[first + l] = block_correct[l];
        }
    }
}
