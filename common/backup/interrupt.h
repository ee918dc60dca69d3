// SIGINT/SIGTERM for base-push (install_interrupt_handlers() in backup.h sets the flag): every wait of a
// run checks it at least every 200 ms.
#pragma once

#include <cstdint>

namespace pgvault {

// Throws Interrupted ("interrupted by SIGINT"/"SIGTERM") once a signal arrived.
void check_interrupt();
// Returns once the clock reaches second `t` (seconds since the epoch), checking the flag meanwhile.
void wait_until_second(std::int64_t t);

}  // namespace pgvault
