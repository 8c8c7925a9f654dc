/* COM1, an 8250/16550 UART, written by polling the line status register. */
#include "tg.h"

#define UART_THR 0 /* transmit holding register */
#define UART_IER 1 /* interrupt enable */
#define UART_LCR 3 /* line control */
#define UART_MCR 4 /* modem control */
#define UART_LSR 5 /* line status */
#define UART_LSR_THRE 0x20
#define UART_LCR_8N1 0x03
#define UART_MCR_DTR_RTS 0x03

void serial_init(void) {
  outb(TG_COM1_PORT + UART_IER, 0);  // polled: no interrupts
  outb(TG_COM1_PORT + UART_LCR, UART_LCR_8N1);
  outb(TG_COM1_PORT + UART_MCR, UART_MCR_DTR_RTS);
}

void serial_write(const char* s, size_t n) {
  for (size_t i = 0; i < n; i++) {
    while ((inb(TG_COM1_PORT + UART_LSR) & UART_LSR_THRE) == 0) cpu_relax();
    outb(TG_COM1_PORT + UART_THR, (uint8_t)s[i]);
  }
}
