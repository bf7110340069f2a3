/* The three functions a board provides to the edgekit-wire device (docs/PORTING.md). */
#ifndef EDGEKIT_HAL_H
#define EDGEKIT_HAL_H

#include <stddef.h>
#include <stdint.h>

/* The next received byte (0..255), or -1 if none has arrived yet. It may wait a little (sleep
 * until an interrupt) but must not block for long: the device loop calls it continuously. */
int edgekit_hal_read_byte(void);

/* Send `length` bytes; returns when they are queued or sent. */
void edgekit_hal_write(const uint8_t *data, size_t length);

/* A free-running counter (wrapping at 2^32) of EDGEKIT_HAL_CYCLES_PER_US ticks per microsecond. */
uint32_t edgekit_hal_cycles(void);

/* Serve edgekit-wire/2 forever; the board's main() calls it after setting up UART and timer.
 * `board` names the board in HELLO_ACK's firmware string, `baud` is the UART's fixed rate. */
void edgekit_device_serve(const char *board, uint32_t baud, uint32_t cycles_per_us);

#endif /* EDGEKIT_HAL_H */
