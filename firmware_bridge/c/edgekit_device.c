/* The device side of edgekit-wire/2 (docs/PROTOCOL.md) over the three-function HAL.
 *
 * One request at a time, replies in arrival order; replies are cached by (session, type, seq)
 * so a retransmitted request is answered without running again; a HELLO starts a new session,
 * clearing the cache and the sample buffers. No heap: every buffer is static and sized here.
 */
#include <string.h>

#include "edgekit_hal.h"
#include "model.h"

#ifndef EDGEKIT_MAX_FRAME /* decoded frame limit: header + payload + crc; a RESULT must fit */
#define EDGEKIT_MAX_FRAME (EDGEKIT_OUTPUT_BYTES + 29 > 256 ? EDGEKIT_OUTPUT_BYTES + 29 : 256)
#endif
#ifndef EDGEKIT_RX_CREDITS
#define EDGEKIT_RX_CREDITS 4 /* frames of EDGEKIT_MAX_FRAME the HAL's receive buffer holds */
#endif
#ifndef EDGEKIT_SAMPLE_BUFFERS
#define EDGEKIT_SAMPLE_BUFFERS 2
#endif
#define CACHE_ENTRIES 32
#define ERROR_DETAIL_MAX 40
#define HEADER 11
#define OVERHEAD 15 /* header + crc */
#define MIN_FRAME 64
#define CACHE_REPLY_MAX (OVERHEAD + 14 + EDGEKIT_OUTPUT_BYTES > OVERHEAD + 3 + ERROR_DETAIL_MAX \
                             ? OVERHEAD + 14 + EDGEKIT_OUTPUT_BYTES : OVERHEAD + 3 + ERROR_DETAIL_MAX)
#define ENCODED_MAX (EDGEKIT_MAX_FRAME + EDGEKIT_MAX_FRAME / 254 + 2)

#if EDGEKIT_MAX_FRAME < MIN_FRAME || EDGEKIT_MAX_FRAME > 65535
#error "EDGEKIT_MAX_FRAME must be 64..65535"
#endif
#if OVERHEAD + 14 + EDGEKIT_OUTPUT_BYTES > EDGEKIT_MAX_FRAME
#error "the logits do not fit one RESULT frame: raise EDGEKIT_MAX_FRAME"
#endif

enum { HELLO = 0x01, HELLO_ACK = 0x02, SET_BAUD = 0x03, ACK = 0x04, LOAD = 0x10, INFER = 0x11,
       RESULT = 0x12, ERROR = 0x21, PING = 0x30, PONG = 0x31, RESET = 0x32 };
enum { BAD_VERSION = 1, NEED_HELLO = 2, BAD_LENGTH = 3, BAD_OFFSET = 4, BAD_TENSOR = 5,
       UNSUPPORTED = 7 };

typedef struct {
    uint32_t session;
    uint16_t seq, length;
    uint8_t type;
    uint8_t frame[CACHE_REPLY_MAX];
} cached_reply_t;

typedef struct {
    uint32_t sample_id, age;
    uint8_t used;
    uint8_t data[EDGEKIT_INPUT_BYTES];
    uint8_t received[(EDGEKIT_INPUT_BYTES + 7) / 8];
} sample_t;

static struct {
    const char *board;
    uint32_t baud, cycles_per_us, boot_nonce, session, clock;
    uint16_t max_frame;
    uint8_t ready, next_cache;
    cached_reply_t cache[CACHE_ENTRIES];
    sample_t samples[EDGEKIT_SAMPLE_BUFFERS];
} device;

static uint8_t rx[ENCODED_MAX];
static uint8_t frame[ENCODED_MAX];
static uint8_t reply[EDGEKIT_MAX_FRAME];
static uint8_t encoded[ENCODED_MAX + 2];

static uint32_t rd32(const uint8_t *p) { return p[0] | p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
static uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static void wr32(uint8_t *p, uint32_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); p[2] = (uint8_t)(v >> 16); p[3] = (uint8_t)(v >> 24); }
static void wr16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v; p[1] = (uint8_t)(v >> 8); }

static uint32_t crc32(const uint8_t *data, size_t length) {
    uint32_t crc = 0xFFFFFFFFu;
    while (length--) {
        crc ^= *data++;
        for (int bit = 0; bit < 8; bit++) crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
    }
    return ~crc;
}

/* COBS-decode in place into `out`; returns the decoded size, or -1 for a malformed block. */
static int cobs_decode(const uint8_t *in, size_t length, uint8_t *out) {
    size_t read = 0, written = 0;
    while (read < length) {
        uint8_t code = in[read++];
        if (code == 0 || read + code - 1 > length) return -1;
        for (uint8_t i = 1; i < code; i++) out[written++] = in[read++];
        if (code < 0xFF && read < length) out[written++] = 0;
    }
    return (int)written;
}

static size_t cobs_encode(const uint8_t *in, size_t length, uint8_t *out) {
    size_t code_at = 0, written = 1;
    uint8_t code = 1;
    for (size_t i = 0; i < length; i++) {
        if (in[i] == 0) {
            out[code_at] = code;
            code_at = written++;
            code = 1;
        } else {
            out[written++] = in[i];
            if (++code == 0xFF) {
                out[code_at] = code;
                code_at = written++;
                code = 1;
            }
        }
    }
    out[code_at] = code;
    return written;
}

static void send_frame(const uint8_t *decoded, size_t length) {
    encoded[0] = 0;
    size_t n = cobs_encode(decoded, length, encoded + 1);
    encoded[n + 1] = 0;
    edgekit_hal_write(encoded, n + 2);
}

/* Fill the reply header (the request's session and seq) and crc; returns the frame size. */
static size_t finish(uint8_t type, uint32_t session, uint16_t seq, size_t payload) {
    reply[0] = 2;
    reply[1] = type;
    reply[2] = 0;
    wr32(reply + 3, session);
    wr16(reply + 7, seq);
    wr16(reply + 9, (uint16_t)payload);
    wr32(reply + HEADER + payload, crc32(reply, HEADER + payload));
    return OVERHEAD + payload;
}

static size_t error_reply(uint16_t code, const char *detail, uint32_t session, uint16_t seq) {
    size_t n = strlen(detail);
    if (n > ERROR_DETAIL_MAX) n = ERROR_DETAIL_MAX;
    wr16(reply + HEADER, code);
    reply[HEADER + 2] = (uint8_t)n;
    memcpy(reply + HEADER + 3, detail, n);
    return finish(ERROR, session, seq, 3 + n);
}

static void clear_session_state(void) {
    memset(device.cache, 0, sizeof device.cache);
    memset(device.samples, 0, sizeof device.samples);
    device.next_cache = 0;
}

static void boot(void) {
    /* a new nonce at every (re)boot: the previous one and the timer mixed (xorshift) */
    uint32_t x = device.boot_nonce ^ edgekit_hal_cycles() ^ 0x9E3779B9u;
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    device.boot_nonce = x ? x : 1;
    device.session = 0;
    device.ready = 0;
    clear_session_state();
}

static uint8_t *put_desc(uint8_t *p, uint8_t rank, const uint16_t *dims, uint32_t scale_bits, int32_t zero_point) {
    *p++ = 0; /* int8 */
    *p++ = rank;
    for (uint8_t i = 0; i < rank; i++, p += 2) wr16(p, dims[i]);
    wr32(p, scale_bits);
    wr32(p + 4, (uint32_t)zero_point);
    return p + 8;
}

static size_t hello_ack(uint32_t session, uint16_t seq) {
    static const uint8_t hash[8] = EDGEKIT_MODEL_HASH;
    static const uint16_t in_dims[3] = {EDGEKIT_INPUT_DIM0, EDGEKIT_INPUT_DIM1, EDGEKIT_INPUT_DIM2};
    static const uint16_t out_dims[1] = {EDGEKIT_OUTPUT_BYTES};
#if defined(__ARM_FEATURE_DSP) && defined(__GNUC__) && !defined(EDGEKIT_PORTABLE) /* as edgekit_kernels.h */
    static const char runtime[] = "edgekit-c dsp";
#else
    static const char runtime[] = "edgekit-c portable";
#endif
    uint8_t *p = reply + HEADER;
    size_t board = strlen(device.board) > 200 ? 200 : strlen(device.board);
    *p++ = 2;
    wr32(p, device.boot_nonce), p += 4;
    *p++ = (uint8_t)(board + 11);
    memcpy(p, "edgekit-fw ", 11), p += 11;
    memcpy(p, device.board, board), p += board;
    memcpy(p, hash, 8), p += 8;
    *p++ = (uint8_t)(sizeof runtime - 1);
    memcpy(p, runtime, sizeof runtime - 1), p += sizeof runtime - 1;
    wr32(p, 0), p += 4;
    wr16(p, device.max_frame), p += 2;
    *p++ = EDGEKIT_RX_CREDITS;
    *p++ = EDGEKIT_SAMPLE_BUFFERS;
    wr32(p, device.baud), p += 4;
    *p++ = 1;
    *p++ = 1;
    p = put_desc(p, 3, in_dims, EDGEKIT_INPUT_SCALE_BITS, EDGEKIT_INPUT_ZERO_POINT);
    p = put_desc(p, 1, out_dims, EDGEKIT_OUTPUT_SCALE_BITS, EDGEKIT_OUTPUT_ZERO_POINT);
    return finish(HELLO_ACK, session, seq, (size_t)(p - (reply + HEADER)));
}

static sample_t *find_sample(uint32_t sample_id) {
    for (int i = 0; i < EDGEKIT_SAMPLE_BUFFERS; i++)
        if (device.samples[i].used && device.samples[i].sample_id == sample_id) return &device.samples[i];
    return NULL;
}

static int complete(const sample_t *s) {
    for (int i = 0; i < EDGEKIT_INPUT_BYTES; i++)
        if (!(s->received[i / 8] & (1u << (i % 8)))) return 0;
    return 1;
}

/* A slot for a new sample: a free one, else the oldest complete one, else the oldest (docs §5.4). */
static sample_t *new_sample(uint32_t sample_id) {
    sample_t *chosen = NULL;
    for (int pass = 0; pass < 3 && !chosen; pass++) {
        for (int i = 0; i < EDGEKIT_SAMPLE_BUFFERS; i++) {
            sample_t *s = &device.samples[i];
            int eligible = pass == 0 ? !s->used : pass == 1 ? complete(s) : 1;
            if (eligible && (!chosen || s->age < chosen->age)) chosen = s;
        }
    }
    memset(chosen, 0, sizeof *chosen);
    chosen->used = 1;
    chosen->sample_id = sample_id;
    chosen->age = ++device.clock;
    return chosen;
}

static size_t load(const uint8_t *p, size_t n, uint32_t session, uint16_t seq) {
    if (n < 9) return error_reply(BAD_LENGTH, "LOAD needs sample_id, tensor, offset", session, seq);
    uint32_t sample_id = rd32(p), offset = rd32(p + 5);
    size_t length = n - 9;
    if (p[4] != 0) return error_reply(BAD_TENSOR, "this model has one input, tensor 0", session, seq);
    if (offset > EDGEKIT_INPUT_BYTES || length > EDGEKIT_INPUT_BYTES - offset)
        return error_reply(BAD_OFFSET, "LOAD past the end of input 0", session, seq);
    sample_t *s = find_sample(sample_id);
    if (!s) s = new_sample(sample_id);
    memcpy(s->data + offset, p + 9, length);
    for (size_t i = offset; i < offset + length; i++) s->received[i / 8] |= (uint8_t)(1u << (i % 8));
    wr32(reply + HEADER, sample_id);
    return finish(ACK, session, seq, 4);
}

/* RESULT INCOMPLETE listing the missing byte ranges of input 0, as many as fit the frame. */
static size_t incomplete(const sample_t *s, uint32_t sample_id, uint32_t session, uint16_t seq) {
    uint8_t *p = reply + HEADER;
    wr32(p, sample_id);
    p[4] = 1;
    wr32(p + 5, 0);
    wr32(p + 9, 0);
    p[13] = 0;
    size_t payload = 14, room = device.max_frame - OVERHEAD;
    int start = -1;
    for (int i = 0; i <= EDGEKIT_INPUT_BYTES && payload + 8 <= room; i++) {
        int missing = i < EDGEKIT_INPUT_BYTES && (!s || !(s->received[i / 8] & (1u << (i % 8))));
        if (missing && start < 0) start = i;
        if (!missing && start >= 0) {
            wr32(p + payload, (uint32_t)start);
            wr32(p + payload + 4, (uint32_t)(i - start));
            payload += 8;
            start = -1;
        }
    }
    return finish(RESULT, session, seq, payload);
}

static size_t infer(const uint8_t *p, size_t n, uint32_t session, uint16_t seq, int *cacheable) {
    if (n < 7) return error_reply(BAD_LENGTH, "INFER needs sample_id, repeat, flags", session, seq);
    uint32_t sample_id = rd32(p);
    uint16_t repeat = rd16(p + 4);
    sample_t *s = find_sample(sample_id);
    if (!s || !complete(s)) {
        *cacheable = 0;
        return incomplete(s, sample_id, session, seq);
    }
    if (repeat == 0) repeat = 1;
    uint8_t *out = reply + HEADER;
    uint32_t start = edgekit_hal_cycles();
    for (uint16_t r = 0; r < repeat; r++) edgekit_model_run((const int8_t *)s->data, (int8_t *)out + 14, NULL);
    uint32_t cycles = (edgekit_hal_cycles() - start) / repeat;
    wr32(out, sample_id);
    out[4] = 0;
    wr32(out + 5, cycles);
    wr32(out + 9, device.cycles_per_us ? cycles / device.cycles_per_us : 0);
    out[13] = 0;
    return finish(RESULT, session, seq, 14 + EDGEKIT_OUTPUT_BYTES);
}

static const cached_reply_t *cache_find(uint32_t session, uint8_t type, uint16_t seq) {
    for (int i = 0; i < CACHE_ENTRIES; i++) {
        const cached_reply_t *c = &device.cache[i];
        if (c->length && c->session == session && c->type == type && c->seq == seq) return c;
    }
    return NULL;
}

static void cache_put(uint32_t session, uint8_t type, uint16_t seq, size_t length) {
    if (length > CACHE_REPLY_MAX) return; /* never: replies are sized below */
    cached_reply_t *c = &device.cache[device.next_cache];
    device.next_cache = (uint8_t)((device.next_cache + 1) % CACHE_ENTRIES);
    c->session = session;
    c->type = type;
    c->seq = seq;
    c->length = (uint16_t)length;
    memcpy(c->frame, reply, length);
}

static void handle(const uint8_t *f, size_t length) {
    uint8_t type = f[1];
    uint32_t session = rd32(f + 3);
    uint16_t seq = rd16(f + 7);
    const uint8_t *p = f + HEADER;
    size_t n = length - OVERHEAD, out;
    int cacheable = 1;
    if (type == PING) {
        if (n < 4) {
            send_frame(reply, error_reply(BAD_LENGTH, "PING needs a token", session, seq));
            return;
        }
        memcpy(reply + HEADER, p, 4);
        wr32(reply + HEADER + 4, device.boot_nonce);
        send_frame(reply, finish(PONG, session, seq, 8));
        return;
    }
    if (type == RESET) {
        send_frame(reply, finish(ACK, session, seq, 0));
        boot();
        return;
    }
    if (type == HELLO) {
        clear_session_state();
        if (n < 4) {
            send_frame(reply, error_reply(BAD_LENGTH, "HELLO needs 4 bytes", session, seq));
            return;
        }
        if (p[0] > 2 || p[1] < 2) {
            device.ready = 0;
            send_frame(reply, error_reply(BAD_VERSION, "this device speaks edgekit-wire/2", session, seq));
            return;
        }
        uint16_t host_max = rd16(p + 2);
        device.max_frame = host_max < EDGEKIT_MAX_FRAME ? (host_max < MIN_FRAME ? MIN_FRAME : host_max) : EDGEKIT_MAX_FRAME;
        device.session = session;
        device.ready = 1;
        send_frame(reply, hello_ack(session, seq));
        return;
    }
    if (!device.ready || session != device.session) {
        send_frame(reply, error_reply(NEED_HELLO, "send HELLO first", session, seq));
        return;
    }
    const cached_reply_t *cached = cache_find(session, type, seq);
    if (cached) {
        send_frame(cached->frame, cached->length);
        return;
    }
    if (type == LOAD) {
        out = load(p, n, session, seq);
    } else if (type == INFER) {
        out = infer(p, n, session, seq, &cacheable);
    } else if (type == SET_BAUD) {
        out = n < 4 ? error_reply(BAD_LENGTH, "SET_BAUD needs a rate", session, seq)
              : rd32(p) == device.baud ? finish(ACK, session, seq, 0)
              : error_reply(UNSUPPORTED, "this UART runs at one rate only", session, seq);
    } else {
        out = error_reply(UNSUPPORTED, "unknown message type", session, seq);
    }
    if (cacheable) cache_put(session, type, seq, out);
    send_frame(reply, out);
}

/* Bytes between delimiters: decode, check size, CRC, version and length; drop anything else. */
static void receive(const uint8_t *bytes, size_t count) {
    int length = cobs_decode(bytes, count, frame);
    if (length < OVERHEAD) return;
    if (crc32(frame, (size_t)length - 4) != rd32(frame + length - 4)) return;
    if (frame[0] != 2 || rd16(frame + 9) != length - OVERHEAD) return;
    handle(frame, (size_t)length);
}

void edgekit_device_serve(const char *board, uint32_t baud, uint32_t cycles_per_us) {
    size_t count = 0;
    int discarding = 0;
    device.board = board;
    device.baud = baud;
    device.cycles_per_us = cycles_per_us;
    device.max_frame = EDGEKIT_MAX_FRAME;
    boot();
    for (;;) {
        int byte = edgekit_hal_read_byte();
        if (byte < 0) continue;
        if (byte == 0) {
            if (!discarding && count) receive(rx, count);
            count = 0;
            discarding = 0;
        } else if (count == sizeof rx) {
            discarding = 1; /* longer than any frame: wait for the next delimiter */
        } else if (!discarding) {
            rx[count++] = (uint8_t)byte;
        }
    }
}
