/* edgekit int8 kernels for the ops edgekit graphs contain; included by the generated model.c.
 *
 * Bit-exact with edgekit's integer reference (quantize/integer_reference.py), and so with
 * onnxruntime: int32 accumulators, onnxruntime's float32 requantisation computed exactly in
 * integers (no FPU needed: edgekit_requantize), ReLU (as a lower output bound, which equals
 * clamping the accumulator), max pooling, FSQ by integer thresholds. Activations are stored as int8: a uint8 tensor is stored as q - 128 with its
 * zero point and bounds moved by the same 128.
 *
 * Like the integer reference, it assumes an arithmetic right shift of negative integers and
 * modular conversion to narrower signed types (gcc, clang, armcc and IAR all do so), and a
 * little-endian target (every Cortex-M in practice).
 *
 * Two paths, one weight layout: the portable C path, and the Arm DSP path (ACLE __smlad/__sxtb16)
 * used when the compiler defines __ARM_FEATURE_DSP (Cortex-M4/M7/M33) unless EDGEKIT_PORTABLE is
 * defined. Activations after the input are HWC, so a kernel row of the im2col patch is one
 * contiguous run. Weights are little-endian words: output channels in pairs, and per group of
 * four inputs (kernel row, column, channel order) one word per channel of the pair.
 */
#ifndef EDGEKIT_KERNELS_H
#define EDGEKIT_KERNELS_H

#include <stdint.h>
#include <string.h>

/* The DSP path's inline assembly is GNU syntax (gcc, clang, armclang); other compilers take the
 * portable path, and the inlining hints become plain `static inline`. */
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(EDGEKIT_PORTABLE)
#include <arm_acle.h>
#define EDGEKIT_DSP 1
#else
#define EDGEKIT_DSP 0
#endif
#if defined(__GNUC__)
#define EDGEKIT_INLINE static inline __attribute__((always_inline))
#define EDGEKIT_NOINLINE static __attribute__((noinline))
#define EDGEKIT_LIKELY(x) __builtin_expect(!!(x), 1)
#else
#define EDGEKIT_INLINE static inline
#define EDGEKIT_NOINLINE static
#define EDGEKIT_LIKELY(x) (x)
#endif

/* pre_shift of a scale that only the exact requantisation takes (see edgekit_requantize) */
#define EDGEKIT_EXACT_ONLY 255

/* A float32 requantisation scale m * 2^-s (m in [2^23, 2^24)) takes edgekit_requantize's fast path
 * when 28 <= s <= 42 and the export proved every accumulator of the channel below
 * 2^min(24, 31 - pre_shift): then mantissa = m << (7 - max(s - 35, 0)) and pre_shift =
 * max(35 - s, 0). Otherwise mantissa = m and pre_shift = EDGEKIT_EXACT_ONLY. */
typedef struct {
    int32_t bias;                     /* int32 at input * weight scale */
    uint32_t mantissa;                /* the scale, see above */
    uint8_t pre_shift, shift;
    int16_t weight_zero_point;
} edgekit_channel_t;

typedef struct {
    const uint32_t *weight;           /* channel pairs interleaved per group of four: see the top */
    const edgekit_channel_t *channels; /* (out_c,) */
    uint8_t weight_zero_points;       /* any channel's weight zero point is not 0 */
    uint16_t in_c, in_h, in_w, out_c, out_h, out_w;
    uint16_t k4;                      /* in_c * k_h * k_w rounded up to a multiple of 4 */
    uint8_t k_h, k_w, stride_h, stride_w, dilation_h, dilation_w, pad_top, pad_left;
    int16_t in_zero_point, out_zero_point; /* as stored (int8) */
    int16_t out_min; /* -128, or the zero point after a ReLU (see edgekit_conv_output) */
    uint8_t all_fast; /* no channel is EDGEKIT_EXACT_ONLY (a constant when edgekit_conv is inlined) */
} edgekit_conv_t;

typedef struct {
    uint16_t channels, area;
    edgekit_channel_t scale; /* the float32 scale x_scale / (y_scale * area); bias 0 */
    uint8_t relu;
    int16_t in_zero_point, out_zero_point;
} edgekit_pool_t;

typedef struct {
    uint16_t channels, in_w, out_h, out_w;
    uint8_t k_h, k_w, stride_h, stride_w;
    int16_t out_min; /* -128, or the stored zero point after a ReLU */
} edgekit_max_pool_t;

typedef struct {
    uint16_t dims;
    int16_t in_zero_point;
    const uint8_t *levels;         /* (dims,) */
    const int32_t *const *thresholds; /* per dimension: levels - 1 thresholds on q - zero point */
    const int8_t *const *code_values; /* per dimension: the stored output of each level */
} edgekit_fsq_t;

static inline int32_t edgekit_saturate(int32_t value) {
#if EDGEKIT_DSP
    return __ssat(value, 8);
#else
    return value < -128 ? -128 : value > 127 ? 127 : value;
#endif
}

/* Bits of x > 0. */
static inline int edgekit_bit_length(uint64_t x) {
#if defined(__GNUC__)
    const uint32_t high = (uint32_t)(x >> 32);
    return high ? 64 - __builtin_clz(high) : 32 - __builtin_clz((uint32_t)x);
#else
    int bits = 0;
    while (x) x >>= 1, bits++;
    return bits;
#endif
}

/* x / 2^k rounded half to even, k in 1..63. */
static inline uint64_t edgekit_round_shift(uint64_t x, int k) {
    return (x + ((uint64_t)1 << (k - 1)) - 1 + ((x >> k) & 1)) >> k;
}

/* onnxruntime's requantisation (MLAS MlasRequantizeOutput, the same on x86 and Arm),
 * round_half_even(float32(float32(acc) * scale)) with scale = mantissa * 2^-shift, computed
 * exactly in integers as the integer reference's `requantize` does: float32(acc) is acc rounded to
 * 24 significant bits (only |acc| >= 2^24 rounds); its product with the 24-bit mantissa is exact in
 * 64 bits and rounded to 24 bits, as the float32 multiply does; then it is rounded half to even to
 * an integer. Rounding is odd-symmetric, so the magnitude is rounded and the sign put back. */
EDGEKIT_NOINLINE int32_t edgekit_requantize_exact(int32_t acc, uint32_t mantissa, int shift) {
    if (acc == 0) return 0;
    uint32_t magnitude = acc < 0 ? 0u - (uint32_t)acc : (uint32_t)acc;
    if (magnitude >= (1u << 24)) { /* float32(acc) */
        const int k = edgekit_bit_length(magnitude) - 24;
        magnitude = (uint32_t)edgekit_round_shift(magnitude, k);
        shift -= k;
    }
    uint64_t product = (uint64_t)magnitude * mantissa; /* >= 2^23, < 2^48 */
    const int extra = edgekit_bit_length(product) - 24;
    if (extra > 0) { /* the float32 product */
        product = edgekit_round_shift(product, extra);
        shift -= extra;
    }
    /* value = product * 2^-shift, product <= 2^24; held within +-1000 */
    int32_t value;
    if (shift > 40) value = 0;
    else if (shift > 0) value = (int32_t)edgekit_round_shift(product, shift);
    else value = shift < -10 || (product << -shift) > 1000 ? 1000 : (int32_t)(product << -shift);
    if (value > 1000) value = 1000;
    return acc < 0 ? -value : value;
}

/* edgekit_requantize_exact's result wherever it is below 2^13 in magnitude (beyond, one of at
 * least 2^13 - 1 of the same sign: any int8 output saturates alike), in a few instructions for
 * most outputs. The fast path (see edgekit_channel_t): float32(acc) is exact, and one SMULL of
 * acc * 2^pre_shift by the shifted mantissa gives fixed = floor(acc * m / 2^(s - 10)), the value
 * with 10 fraction bits. For |value| < 2^13 the float32 product's rounding moves the value by at
 * most 2^-12, a quarter of fixed's unit, so it can change the final rounding only when fixed's
 * fraction lies within [half - 2, half + 1]: that case (4 in 1024) takes the exact path. Elsewhere
 * there are no ties, and rounding half up equals rounding half to even. */
EDGEKIT_NOINLINE int32_t edgekit_requantize_slow(int32_t acc, const edgekit_channel_t *scale, int32_t zero_point) {
    const int shift = scale->shift;
    const uint32_t mantissa = scale->pre_shift == EDGEKIT_EXACT_ONLY ? scale->mantissa
                              : scale->mantissa >> (shift > 35 ? 42 - shift : 7);
    return edgekit_requantize_exact(acc, mantissa, shift) + zero_point;
}

/* The output plus its zero point, unsaturated. The slow path reads the shift itself, so that the
 * fast path never loads it. */
static inline int32_t edgekit_requantize(int32_t acc, const edgekit_channel_t *scale, int32_t zero_point, int all_fast) {
    const int pre_shift = scale->pre_shift;
    if (all_fast || EDGEKIT_LIKELY(pre_shift != EDGEKIT_EXACT_ONLY)) {
        const int32_t fixed = (int32_t)(((int64_t)(acc * (1 << pre_shift)) * (int32_t)scale->mantissa) >> 32);
        /* fractions half - 2 .. half + 1 are t's low 10 bits 0..3; elsewhere t >> 10 is fixed
         * rounded to nearest, plus the zero point (whole units of t leave its low bits alone) */
        const int32_t t = fixed + 514 + zero_point * 1024;
        if (EDGEKIT_LIKELY((t & 1023) >= 4)) return t >> 10;
    }
    return edgekit_requantize_slow(acc, scale, zero_point);
}

/* Widen `groups` groups of four int8 (minus the zero point) into one slot of the interleaved
 * patch: per group the int16 pairs (e0, e2) and (e1, e3) at dst[0..3]; dst advances 8. */
static inline void edgekit_pack(const int8_t *src, int groups, int16_t *dst, int32_t zero_point) {
#if EDGEKIT_DSP
    const uint32_t offset = (uint32_t)(uint16_t)(-zero_point) * 0x00010001u;
    for (int g = 0; g < groups; g++, src += 4, dst += 8) {
        uint32_t x, even, odd;
        memcpy(&x, src, 4);
        even = __sxtab16(offset, x);
        __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(odd) : "r"(offset), "r"(x));
        memcpy(dst, &even, 4);
        memcpy(dst + 2, &odd, 4);
    }
#else
    for (int g = 0; g < groups; g++, src += 4, dst += 8) {
        dst[0] = (int16_t)(src[0] - zero_point);
        dst[1] = (int16_t)(src[2] - zero_point);
        dst[2] = (int16_t)(src[1] - zero_point);
        dst[3] = (int16_t)(src[3] - zero_point);
    }
#endif
}

/* The im2col patch of output pixel `pixel` (HWC input) into slot `slot` (0 or 1) of the
 * interleaved patch, elements in (kernel row, kernel column, channel) order: per group of four
 * the int16 lanes e0 e2 e1 e3 (see edgekit_pack). Returns the sum of (x - zero point), for
 * weight zero points. Whole kernel rows inside the input are widened straight from it; so are the
 * taps (runs of in_c bytes) of a dilated kernel or of a window touching the padding, when in_c is
 * a multiple of four, the padding's taps zero; other windows are gathered element by element. */
EDGEKIT_INLINE int32_t edgekit_patch(const edgekit_conv_t *l, const int8_t *in,
                                                                   int pixel, int slot, int16_t *patch) {
    const int in_c = l->in_c, in_h = l->in_h, in_w = l->in_w, k_h = l->k_h, k_w = l->k_w;
    const int dil_h = l->dilation_h, dil_w = l->dilation_w, run = k_w * in_c, k4 = l->k4;
    const int32_t zero_point = l->in_zero_point;
    const int y0 = (pixel / l->out_w) * l->stride_h - l->pad_top;
    const int x0 = (pixel % l->out_w) * l->stride_w - l->pad_left;
    int16_t *dst = patch + slot * 4;
    int32_t sum = 0;
    /* A one-row kernel may read up to 3 bytes past its run: their weights are the zero padding,
     * so they add nothing (the arena keeps 4 spare bytes at its end); not with weight zero
     * points, whose sum would see them. */
    int direct = dil_w == 1 && x0 >= 0 && x0 + k_w <= in_w && (run % 4 == 0 || (k_h == 1 && !l->weight_zero_points));
    for (int i = 0; i < k_h && direct; i++) direct = y0 + i * dil_h >= 0 && y0 + i * dil_h < in_h;
    if (direct) {
        for (int i = 0; i < k_h; i++) {
            const int8_t *row = in + ((y0 + i * dil_h) * in_w + x0) * in_c;
            edgekit_pack(row, k_h == 1 ? k4 / 4 : run / 4, dst + i * (run / 4) * 8, zero_point);
            for (int e = 0; l->weight_zero_points && e < run; e++) sum += row[e] - zero_point;
        }
        return sum;
    }
    if (in_c % 4 == 0) {
        const int tap_groups = in_c / 4;
        for (int i = 0; i < k_h; i++) {
            const int y = y0 + i * dil_h;
            for (int j = 0; j < k_w; j++) {
                const int x = x0 + j * dil_w;
                int16_t *tap_dst = dst + (i * k_w + j) * tap_groups * 8;
                if (y < 0 || y >= in_h || x < 0 || x >= in_w) {
                    for (int g = 0; g < tap_groups; g++) memset(tap_dst + g * 8, 0, 8);
                    continue;
                }
                const int8_t *tap = in + (y * in_w + x) * in_c;
                edgekit_pack(tap, tap_groups, tap_dst, zero_point);
                for (int e = 0; l->weight_zero_points && e < in_c; e++) sum += tap[e] - zero_point;
            }
        }
        return sum;
    }
    int e = 0;
    for (int i = 0; i < k_h; i++) {
        const int y = y0 + i * dil_h;
        for (int j = 0; j < k_w; j++) {
            const int x = x0 + j * dil_w;
            const int inside = y >= 0 && y < in_h && x >= 0 && x < in_w;
            const int8_t *src = in + (y * in_w + x) * in_c;
            for (int c = 0; c < in_c; c++, e++) {
                const int32_t v = inside ? src[c] - zero_point : 0;
                dst[(e >> 2) * 8 + ((e & 1) << 1) + ((e >> 1) & 1)] = (int16_t)v;
                sum += v;
            }
        }
    }
    for (; e < k4; e++) dst[(e >> 2) * 8 + ((e & 1) << 1) + ((e >> 1) & 1)] = 0;
    return sum;
}

/* One output from its accumulator (the bias included): weight zero-point correction, requantisation, saturation. A ReLU on the
 * accumulator is the lower bound `out_min` = the output zero point instead: requantisation is
 * monotonic and maps 0 to the zero point. */
static inline int32_t edgekit_conv_output(const edgekit_conv_t *l, int32_t acc, const edgekit_channel_t *channel,
                                          int32_t patch_sum) {
    if (l->weight_zero_points) acc -= channel->weight_zero_point * patch_sum;
    const int32_t out_min = l->out_min;
    const int32_t value =
        edgekit_saturate(edgekit_requantize(acc, channel, l->out_zero_point, l->all_fast));
    return out_min > -128 && value < out_min ? out_min : value; /* folded when inlined */
}

/* Dot products of a channel pair with the two patch slots over `groups` groups of four inputs,
 * added to s = {ch0 x slot0, ch0 x slot1, ch1 x slot0, ch1 x slot1} (the biases). */
EDGEKIT_INLINE void edgekit_dot_2x2(const uint32_t *w, const int16_t *p, int groups, int32_t s[4]) {
#if EDGEKIT_DSP
    /* 16 multiply-accumulates per 17 instructions: two LDRD of patch pairs, one LDRD of the two
     * channels' weight words, four SXTB16, eight SMLAD, the loop. Written out because gcc spills
     * a loop of 14 live values. SXTB16 of weight bytes w0 w1 w2 w3 gives (w0, w2), with ROR 8
     * (w1, w3): the lane order of the patch words. */
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    uint32_t a, b, x0, x1, y0, y1, t;
    __asm__ volatile(
        "1:\n\t"
        "ldrd %[a], %[b], [%[w]], #8\n\t"
        "ldrd %[x0], %[x1], [%[p]], #8\n\t"
        "ldrd %[y0], %[y1], [%[p]], #8\n\t"
        "sxtb16 %[t], %[a]\n\t"
        "smlad %[s00], %[t], %[x0], %[s00]\n\t"
        "smlad %[s01], %[t], %[y0], %[s01]\n\t"
        "sxtb16 %[a], %[a], ror #8\n\t"
        "smlad %[s00], %[a], %[x1], %[s00]\n\t"
        "smlad %[s01], %[a], %[y1], %[s01]\n\t"
        "sxtb16 %[t], %[b]\n\t"
        "smlad %[s10], %[t], %[x0], %[s10]\n\t"
        "smlad %[s11], %[t], %[y0], %[s11]\n\t"
        "sxtb16 %[b], %[b], ror #8\n\t"
        "smlad %[s10], %[b], %[x1], %[s10]\n\t"
        "smlad %[s11], %[b], %[y1], %[s11]\n\t"
        "subs %[n], %[n], #1\n\t"
        "bne 1b"
        : [s00] "+r"(s00), [s01] "+r"(s01), [s10] "+r"(s10), [s11] "+r"(s11), [w] "+r"(w),
          [p] "+r"(p), [n] "+r"(groups), [a] "=&r"(a), [b] "=&r"(b), [x0] "=&r"(x0),
          [x1] "=&r"(x1), [y0] "=&r"(y0), [y1] "=&r"(y1), [t] "=&r"(t)
        :
        : "cc", "memory");
    s[0] = s00, s[1] = s01, s[2] = s10, s[3] = s11;
#else
    /* Plain C; written so that a compiler for a DSP-capable core can still use its 16 x 16
     * multiply-accumulates (gcc: SMLABB/SMLATB on the patch words' halves). */
    int32_t s00 = s[0], s01 = s[1], s10 = s[2], s11 = s[3];
    for (int g = 0; g < groups; g++, w += 2, p += 8) {
        int32_t x[4];
        memcpy(x, p, 16); /* slot 0: (e0, e2), (e1, e3); slot 1 likewise */
        const uint32_t a = w[0], b = w[1]; /* bytes w0 w1 w2 w3 of each channel */
        const int32_t a0 = (int8_t)a, a1 = (int8_t)(a >> 8), a2 = (int8_t)(a >> 16), a3 = (int8_t)(a >> 24);
        const int32_t b0 = (int8_t)b, b1 = (int8_t)(b >> 8), b2 = (int8_t)(b >> 16), b3 = (int8_t)(b >> 24);
        s00 += (int16_t)x[0] * a0;
        s00 += (x[0] >> 16) * a2;
        s00 += (int16_t)x[1] * a1;
        s00 += (x[1] >> 16) * a3;
        s01 += (int16_t)x[2] * a0;
        s01 += (x[2] >> 16) * a2;
        s01 += (int16_t)x[3] * a1;
        s01 += (x[3] >> 16) * a3;
        s10 += (int16_t)x[0] * b0;
        s10 += (x[0] >> 16) * b2;
        s10 += (int16_t)x[1] * b1;
        s10 += (x[1] >> 16) * b3;
        s11 += (int16_t)x[2] * b0;
        s11 += (x[2] >> 16) * b2;
        s11 += (int16_t)x[3] * b1;
        s11 += (x[3] >> 16) * b3;
    }
    s[0] = s00, s[1] = s01, s[2] = s10, s[3] = s11;
#endif
}

/* Convolution, groups 1, HWC activations: two output pixels by two output channels at a time
 * (the weight layout pairs the channels; an odd out_c is padded with a zero channel at export).
 * An odd last pixel reuses the other slot's stale patch and drops its outputs. `scratch` is
 * 4-byte aligned with 4 * k4 bytes: the two interleaved int16 slots. */
EDGEKIT_INLINE void edgekit_conv(const edgekit_conv_t *l, const int8_t *in, int8_t *out, void *scratch) {
    const int pixels = l->out_h * l->out_w, groups = l->k4 / 4, out_c = l->out_c;
    int16_t *patch = (int16_t *)scratch;
    for (int pixel = 0; pixel < pixels; pixel += 2) {
        const int second = pixel + 1 < pixels;
        const int32_t sum0 = edgekit_patch(l, in, pixel, 0, patch);
        const int32_t sum1 = second ? edgekit_patch(l, in, pixel + 1, 1, patch) : 0;
        const uint32_t *w = l->weight;
        int8_t *o0 = out + pixel * out_c;
        for (int o = 0; o < out_c; o += 2, w += 2 * groups, o0 += 2) {
            const edgekit_channel_t *channel = l->channels + o;
            const int32_t bias1 = o + 1 < out_c ? channel[1].bias : 0;
            int32_t s[4] = {channel->bias, channel->bias, bias1, bias1};
            edgekit_dot_2x2(w, patch, groups, s);
            o0[0] = (int8_t)edgekit_conv_output(l, s[0], channel, sum0);
            if (second) o0[out_c] = (int8_t)edgekit_conv_output(l, s[1], channel, sum1);
            if (o + 1 < out_c) {
                o0[1] = (int8_t)edgekit_conv_output(l, s[2], channel + 1, sum0);
                if (second) o0[out_c + 1] = (int8_t)edgekit_conv_output(l, s[3], channel + 1, sum1);
            }
        }
    }
}

/* The caller's CHW window as HWC: the layout every step after it reads. */
static void edgekit_to_hwc(const int8_t *in, int8_t *out, int channels, int area) {
    for (int c = 0; c < channels; c++)
        for (int i = 0; i < area; i++) out[i * channels + c] = in[c * area + i];
}

/* Global average pooling (HWC): the integer sum per channel; the 1/area is in the scale. */
static void edgekit_pool(const edgekit_pool_t *l, const int8_t *in, int8_t *out) {
    for (int c = 0; c < l->channels; c++) {
        int32_t acc = 0;
        for (int i = 0; i < l->area; i++) acc += in[i * l->channels + c] - l->in_zero_point;
        if (l->relu && acc < 0) acc = 0;
        out[c] = (int8_t)edgekit_saturate(
            edgekit_requantize(acc, &l->scale, l->out_zero_point, 0));
    }
}

/* Max pooling (HWC, no padding, floor): a stored int8 keeps the order of q (uint8 is stored as
 * q - 128), so the largest stored value is the largest q; scale and zero point pass through.
 * Inline because most models have no max pool, and an unused static function warns. */
static inline void edgekit_max_pool(const edgekit_max_pool_t *l, const int8_t *in, int8_t *out) {
    for (int oh = 0; oh < l->out_h; oh++)
        for (int ow = 0; ow < l->out_w; ow++)
            for (int c = 0; c < l->channels; c++) {
                int8_t best = (int8_t)l->out_min;
                for (int i = 0; i < l->k_h; i++)
                    for (int j = 0; j < l->k_w; j++) {
                        const int row = oh * l->stride_h + i, col = ow * l->stride_w + j;
                        const int8_t v = in[(row * l->in_w + col) * l->channels + c];
                        if (v > best) best = v;
                    }
                out[(oh * l->out_w + ow) * l->channels + c] = best;
            }
}

/* FSQ: per dimension the level is the number of thresholds exceeded; returns the code index. */
static uint32_t edgekit_fsq(const edgekit_fsq_t *l, const int8_t *in, int8_t *out) {
    uint32_t code = 0, basis = 1;
    for (int d = 0; d < l->dims; d++) {
        const int32_t q = in[d] - l->in_zero_point;
        int level = 0;
        for (int k = 0; k + 1 < l->levels[d]; k++) level += q > l->thresholds[d][k];
        out[d] = l->code_values[d][level];
        code += (uint32_t)level * basis;
        basis *= l->levels[d];
    }
    return code;
}

#endif /* EDGEKIT_KERNELS_H */
