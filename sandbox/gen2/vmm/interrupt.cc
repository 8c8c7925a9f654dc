#include "sandbox/gen2/vmm/interrupt.h"

#include <unistd.h>

#include <cerrno>

namespace skiff::gen2 {

void IrqfdInterrupt::Trigger() {
  const uint64_t one = 1;
  ssize_t n;
  do {
    n = write(eventfd_.get(), &one, sizeof(one));
  } while (n < 0 && errno == EINTR);
  // EAGAIN: the counter is saturated, an interrupt is pending anyway.
  if (n < 0 && errno != EAGAIN) failures_.fetch_add(1, std::memory_order_relaxed);
}

void IrqLineInterrupt::Trigger() {
  if (!vm_->IrqLine(gsi_, true).ok() || !vm_->IrqLine(gsi_, false).ok()) {
    failures_.fetch_add(1, std::memory_order_relaxed);
  }
}

}  // namespace skiff::gen2
