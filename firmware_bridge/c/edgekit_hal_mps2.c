/* HAL for Arm's MPS2 AN386 (Cortex-M4) as QEMU emulates it (`-M mps2-an386`): CMSDK APB UART0
 * with a receive interrupt feeding a ring buffer, SysTick as the cycle counter (25 MHz; under
 * `-icount shift=0` one tick is 40 instructions), startup code and vector table. */
#include <stdint.h>

#include "edgekit_hal.h"

#define UART0_DATA (*(volatile uint32_t *)0x40004000u)
#define UART0_STATE (*(volatile uint32_t *)0x40004004u) /* bit 0 TX full, bit 1 RX full */
#define UART0_CTRL (*(volatile uint32_t *)0x40004008u)  /* TX enable, RX enable, -, RX interrupt */
#define UART0_INTSTATUS (*(volatile uint32_t *)0x4000400Cu)
#define UART0_BAUDDIV (*(volatile uint32_t *)0x40004010u)
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)
#define NVIC_ISER0 (*(volatile uint32_t *)0xE000E100u)
#define CLOCK_HZ 25000000u
#define RX_RING 2048u /* >= EDGEKIT_RX_CREDITS encoded frames of EDGEKIT_MAX_FRAME */

static volatile uint8_t ring[RX_RING];
static volatile uint32_t ring_head, ring_tail, systick_wraps;

void uart0_rx_handler(void) {
    /* Clear first, then drain: a byte arriving after the last read raises the interrupt again.
     * (Cleared after draining, such a byte would sit in DATA with no interrupt, and the UART
     * takes no more bytes while DATA is full: the firmware would never receive again.) */
    UART0_INTSTATUS = 2u;
    while (UART0_STATE & 2u) {
        uint8_t byte = (uint8_t)UART0_DATA;
        if (ring_head - ring_tail < RX_RING) ring[ring_head++ % RX_RING] = byte;
    }
}

void systick_handler(void) { systick_wraps++; }

int edgekit_hal_read_byte(void) {
    /* Sleep with interrupts masked: a byte arriving between the check and WFI still wakes it
     * (a pending interrupt ends WFI even when PRIMASK holds it back), then it is taken here. */
    __asm__ volatile("cpsid i" ::: "memory");
    if (ring_head == ring_tail) __asm__ volatile("wfi");
    __asm__ volatile("cpsie i" ::: "memory");
    if (ring_head == ring_tail) return -1;
    return ring[ring_tail++ % RX_RING];
}

void edgekit_hal_write(const uint8_t *data, size_t length) {
    while (length--) {
        while (UART0_STATE & 1u) {
        }
        UART0_DATA = *data++;
    }
}

uint32_t edgekit_hal_cycles(void) {
    uint32_t wraps, count;
    do {
        wraps = systick_wraps;
        count = 0xFFFFFFu - SYST_CVR;
    } while (wraps != systick_wraps);
    return (wraps << 24) + count;
}

#ifndef EDGEKIT_MAIN
int main(void) {
    edgekit_device_serve("mps2-an386", 921600, CLOCK_HZ / 1000000u);
    return 0;
}
#endif

/* ---- startup: vector table, .data/.bss set-up, UART and SysTick ---- */
extern uint32_t __data_load, __data_start, __data_end, __bss_start, __bss_end, __stack_top;
extern int main(void);

void reset_handler(void) {
    uint32_t *from = &__data_load, *to = &__data_start;
    while (to < &__data_end) *to++ = *from++;
    for (to = &__bss_start; to < &__bss_end;) *to++ = 0;
    UART0_BAUDDIV = 16u;
    UART0_CTRL = 1u | 2u | 8u;
    NVIC_ISER0 = 1u << 0; /* UART0 RX is IRQ 0 on AN385/AN386 */
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0u;
    SYST_CSR = 7u; /* processor clock, interrupt on wrap, enabled */
    main();
    for (;;) {
    }
}

static void fault_handler(void) {
    static const uint8_t message[] = "\r\nedgekit: hard fault\r\n";
    edgekit_hal_write(message, sizeof message - 1);
    for (;;) {
    }
}

typedef void (*vector_t)(void);
__attribute__((section(".isr_vector"), used)) static const vector_t vectors[17] = {
    (vector_t)(uintptr_t)&__stack_top, reset_handler, fault_handler, fault_handler, fault_handler,
    fault_handler, fault_handler, 0, 0, 0, 0, fault_handler, fault_handler, 0, fault_handler,
    systick_handler, uart0_rx_handler,
};
