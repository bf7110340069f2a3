/* Host build of the generated model for parity checks: reads windows on stdin, writes results.
 *   edgekit_parity run       stdin: N x EDGEKIT_INPUT_BYTES int8
 *                            stdout: per window logits, pre_fsq (int8) and the FSQ code (u32 LE)
 *   edgekit_parity quantize  stdin: N x EDGEKIT_INPUT_BYTES float32 LE; stdout: the int8 input
 *   edgekit_parity requantize  stdin: N x (acc, mantissa, pre_shift, shift) int32 LE;
 *                            stdout: N x int32, the kernels' edgekit_requantize held to +-1000
 * Built with -DEDGEKIT_PROFILE -DEDGEKIT_LAYERS (edgekit_layers), `run` also writes, before each
 * window's results, every step's stored output in step order (per-layer parity).
 */
#include <stdio.h>
#include <string.h>

#pragma GCC diagnostic ignored "-Wunused-function" /* the kernels this harness does not call */
#include "edgekit_kernels.h"
#include "model.h"

#ifdef EDGEKIT_LAYERS
void edgekit_profile_step(int step) {
    fwrite(edgekit_layer_output(step), (size_t)edgekit_layer_bytes(step), 1, stdout);
}
#endif

int main(int argc, char **argv) {
    static int8_t input[EDGEKIT_INPUT_BYTES];
    static float window[EDGEKIT_INPUT_BYTES];
    if (argc == 2 && strcmp(argv[1], "quantize") == 0) {
        while (fread(window, sizeof window, 1, stdin) == 1) {
            edgekit_quantize_input(window, input);
            fwrite(input, sizeof input, 1, stdout);
        }
        return 0;
    }
    if (argc == 2 && strcmp(argv[1], "requantize") == 0) {
        int32_t fields[4];
        while (fread(fields, sizeof fields, 1, stdin) == 1) {
            const edgekit_channel_t scale = {0, (uint32_t)fields[1], (uint8_t)fields[2], (uint8_t)fields[3], 0};
            int32_t value = edgekit_requantize(fields[0], &scale, 0, 0);
            value = value > 1000 ? 1000 : value < -1000 ? -1000 : value;
            fwrite(&value, sizeof value, 1, stdout);
        }
        return 0;
    }
    if (argc != 2 || strcmp(argv[1], "run") != 0) {
        fprintf(stderr, "usage: edgekit_parity run|quantize|requantize < input > results\n");
        return 2;
    }
    while (fread(input, sizeof input, 1, stdin) == 1) {
        int8_t logits[EDGEKIT_OUTPUT_BYTES];
        edgekit_detail_t detail;
        edgekit_model_run(input, logits, &detail);
        unsigned char code[4] = {(unsigned char)detail.code, (unsigned char)(detail.code >> 8),
                                 (unsigned char)(detail.code >> 16), (unsigned char)(detail.code >> 24)};
        fwrite(logits, sizeof logits, 1, stdout);
        fwrite(detail.pre_fsq, sizeof detail.pre_fsq, 1, stdout);
        fwrite(code, sizeof code, 1, stdout);
    }
    return 0;
}
