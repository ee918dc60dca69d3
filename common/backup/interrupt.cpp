#include "common/backup/interrupt.h"

#include <chrono>
#include <csignal>
#include <ctime>
#include <string>
#include <thread>

#include "common/backup/backup.h"
#include "common/base/errors.h"

namespace pgvault {

namespace {

volatile std::sig_atomic_t g_signal = 0;

extern "C" void on_signal(int signo) { g_signal = signo; }

}  // namespace

void check_interrupt() {
  if (int s = g_signal) {
    throw Error(ErrorKind::Interrupted, std::string("interrupted by ") + (s == SIGTERM ? "SIGTERM" : "SIGINT"));
  }
}

void wait_until_second(std::int64_t t) {
  while (static_cast<std::int64_t>(std::time(nullptr)) < t) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    check_interrupt();
  }
}

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = 0;  // no SA_RESTART: a blocking wait returns EINTR at once
  sigaction(SIGINT, &sa, nullptr);
  sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace pgvault
