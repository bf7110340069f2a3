/* Footprint self-test for the MPS2 build: runs the model on the windows in selftest_data.h,
 * checks every output against the integer reference's, and prints one line with the cycles per
 * inference and per step and the stack high-water mark (measured by painting). `edgekit export
 * --target mcu` boots it in QEMU with -icount shift=0, where the counts are deterministic. */
#include <stdint.h>
#include <string.h>

#include "edgekit_hal.h"
#include "model.h"
#include "selftest_data.h"

#define PAINT 0xA5A5A5A5u
#define RUNS 4 /* per window: per-step ticks add up to a finer resolution */

extern uint32_t __stack_limit, __stack_top;
static uint32_t step_ticks[EDGEKIT_STEPS], last;

void edgekit_profile_step(int step) {
    uint32_t now = edgekit_hal_cycles();
    step_ticks[step] += now - last;
    last = now;
}

static void put(const char *text) { edgekit_hal_write((const uint8_t *)text, strlen(text)); }

static void put_number(const char *name, uint32_t value) {
    char digits[11];
    int n = 0;
    do digits[n++] = (char)('0' + value % 10); while ((value /= 10) && n < 10);
    put(" ");
    put(name);
    put("=");
    while (n) edgekit_hal_write((const uint8_t *)&digits[--n], 1);
}

__attribute__((noinline)) static void paint_stack(void) {
    volatile uint32_t *p = &__stack_limit;
    volatile uint32_t *sp = (volatile uint32_t *)__builtin_frame_address(0) - 32;
    while (p < sp) *p++ = PAINT;
}

int main(void) {
    uint32_t exact = 0, total = 0;
    paint_stack();
    for (int w = 0; w < SELFTEST_WINDOWS; w++) {
        int8_t logits[EDGEKIT_OUTPUT_BYTES];
        edgekit_detail_t detail;
        for (int r = 0; r < RUNS; r++) {
            uint32_t start = last = edgekit_hal_cycles();
            edgekit_model_run(selftest_inputs[w], logits, &detail);
            total += edgekit_hal_cycles() - start;
        }
        exact += memcmp(logits, selftest_logits[w], EDGEKIT_OUTPUT_BYTES) == 0 && detail.code == selftest_codes[w];
    }
    const uint32_t *p = &__stack_limit;
    while (p < &__stack_top && *p == PAINT) p++;
    put("\nEDGEKIT-SELFTEST");
    put_number("windows", SELFTEST_WINDOWS);
    put_number("runs", RUNS);
    put_number("exact", exact);
    put_number("ticks", total);
    put_number("stack", (uint32_t)((const uint8_t *)&__stack_top - (const uint8_t *)p));
    for (int s = 0; s < EDGEKIT_STEPS; s++) put_number("step", step_ticks[s]);
    put(" end\n");
    for (;;) {
    }
}
