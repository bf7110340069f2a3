/* edgekit int8 kernels for the ops edgekit graphs contain; included by the generated model.c.
 *
 * Bit-exact with edgekit's integer reference (quantize/integer_reference.py): int32 accumulators,
 * Q31 fixed-point requantisation rounding half up, ReLU (as a lower output bound, which equals
 * clamping the accumulator), FSQ by integer thresholds. Activations are stored as int8: a uint8 tensor is stored as q - 128 with its
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

typedef struct {
    int32_t bias;                     /* int32 at input * weight scale */
    int32_t multiplier;               /* Q31 */
    int32_t shift;                    /* total right shift s, 1..62 */
    int32_t high_shift;               /* s - 32 for s in 33..52 (the fast path), else 0 */
    int32_t offset;                   /* with high_shift: 2^(s-33) + (zero point << (s-32)) */
    int32_t weight_zero_point;
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
    uint8_t all_high_shift; /* every channel takes the 32-bit requantisation */
} edgekit_conv_t;

typedef struct {
    uint16_t channels, area;
    int32_t multiplier;
    uint8_t shift, relu;
    int16_t in_zero_point, out_zero_point;
} edgekit_pool_t;

typedef struct {
    uint16_t dims;
    int16_t in_zero_point;
    const uint8_t *levels;         /* (dims,) */
    const int32_t *const *thresholds; /* per dimension: levels - 1 thresholds on q - zero point */
    const int8_t *const *code_values; /* per dimension: the stored output of each level */
} edgekit_fsq_t;

/* round_half_up(acc * multiplier / 2^shift) for any shift in 1..62, held within +-1000 so that
 * adding a zero point cannot overflow (the caller saturates to int8). */
EDGEKIT_NOINLINE int32_t edgekit_requantize_wide(int32_t acc, int32_t multiplier, int shift) {
    const int64_t rounded = ((int64_t)acc * multiplier + ((int64_t)1 << (shift - 1))) >> shift;
    return rounded > 1000 ? 1000 : rounded < -1000 ? -1000 : (int32_t)rounded;
}

static inline int32_t edgekit_saturate(int32_t value) {
#if EDGEKIT_DSP
    return __ssat(value, 8);
#else
    return value < -128 ? -128 : value > 127 ? 127 : value;
#endif
}

/* clamp(round_half_up(acc * multiplier / 2^shift) + zero_point) to int8. For shift >= 33
 * (multipliers below 1/4, the usual case) the high word of the product P is enough:
 * floor((P + 2^(s-1)) / 2^s) = floor((floor(P / 2^32) + 2^(s-33)) / 2^(s-32)), one SMULL and
 * three instructions; other shifts take the 64-bit path, out of line. */
static inline int8_t edgekit_requantize(int32_t acc, int32_t multiplier, int shift, int32_t zero_point) {
    if (shift >= 33) {
        const int32_t high = (int32_t)(((int64_t)acc * multiplier) >> 32);
        return (int8_t)edgekit_saturate(((high + (1 << (shift - 33))) >> (shift - 32)) + zero_point);
    }
    return (int8_t)edgekit_saturate(edgekit_requantize_wide(acc, multiplier, shift) + zero_point);
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
 * weight zero points. Whole kernel rows inside the input are widened straight from it; a window
 * touching the padding (the borders) is gathered element by element. */
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

/* One output: bias, weight zero-point correction, requantisation, saturation. A ReLU on the
 * accumulator is the lower bound `out_min` = the output zero point instead: requantisation is
 * monotonic and maps 0 to the zero point. With high_shift k, rounding and zero point are one
 * added constant: (h + r) >> k plus zp equals (h + r + (zp << k)) >> k exactly. */
static inline int32_t edgekit_conv_output(const edgekit_conv_t *l, int32_t acc, const edgekit_channel_t *channel,
                                          int32_t patch_sum) {
    if (l->weight_zero_points) acc -= channel->weight_zero_point * patch_sum;
    acc += channel->bias;
    const int high_shift = channel->high_shift;
    const int32_t out_min = l->out_min, zero_point = l->out_zero_point;
    int32_t value;
    if (l->all_high_shift || EDGEKIT_LIKELY(high_shift > 0)) {
        const int32_t high = (int32_t)(((int64_t)acc * channel->multiplier) >> 32);
        value = edgekit_saturate((high + channel->offset) >> high_shift);
    } else {
        value = edgekit_saturate(edgekit_requantize_wide(acc, channel->multiplier, channel->shift) + zero_point);
    }
    return out_min > -128 && value < out_min ? out_min : value; /* folded when inlined */
}

/* Dot products of a channel pair with the two patch slots over `groups` groups of four inputs:
 * s = {ch0 x slot0, ch0 x slot1, ch1 x slot0, ch1 x slot1}. */
EDGEKIT_INLINE void edgekit_dot_2x2(const uint32_t *w, const int16_t *p, int groups, int32_t s[4]) {
#if EDGEKIT_DSP
    /* 16 multiply-accumulates per 17 instructions: two LDRD of patch pairs, one LDRD of the two
     * channels' weight words, four SXTB16, eight SMLAD, the loop. Written out because gcc spills
     * a loop of 14 live values. SXTB16 of weight bytes w0 w1 w2 w3 gives (w0, w2), with ROR 8
     * (w1, w3): the lane order of the patch words. */
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
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
    int32_t s00 = 0, s01 = 0, s10 = 0, s11 = 0;
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
            int32_t s[4];
            edgekit_dot_2x2(w, patch, groups, s);
            const edgekit_channel_t *channel = l->channels + o;
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

/* Global average pooling (HWC): the integer sum per channel; the 1/area is in the multiplier. */
static void edgekit_pool(const edgekit_pool_t *l, const int8_t *in, int8_t *out) {
    for (int c = 0; c < l->channels; c++) {
        int32_t acc = 0;
        for (int i = 0; i < l->area; i++) acc += in[i * l->channels + c] - l->in_zero_point;
        if (l->relu && acc < 0) acc = 0;
        out[c] = edgekit_requantize(acc, l->multiplier, l->shift, l->out_zero_point);
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
