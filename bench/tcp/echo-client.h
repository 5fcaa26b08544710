/*
 * What the echo benchmark's load clients share (bench/tcp/echo-client.c and
 * bench/tls/tls-echo-client.c): the clock, the message pattern each
 * connection checks byte for byte, the client's own CPU time, and the one
 * JSON line a run prints.
 */
#ifndef WASMLOOP_ECHO_CLIENT_H
#define WASMLOOP_ECHO_CLIENT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <time.h>

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Message `round` of connection `id`: a pattern the echo must return exactly. */
static void fill(uint8_t *msg, size_t n, uint32_t round, int id) {
  for (size_t i = 0; i < n; i++) msg[i] = (uint8_t)(i * 31 + round * 7 + id);
}

/* User plus system CPU time this process has used, in microseconds. */
static uint64_t cpu_us(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (uint64_t)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000u + (uint64_t)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}

static int cmp_u32(const void *a, const void *b) {
  uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
  return x < y ? -1 : x > y;
}

/*
 * Prints the run's JSON line: round trips per second, latency percentiles
 * (`lat`, `nlat` round trips in microseconds, sorted here), the bytes that
 * failed the check, and the client's CPU time; `extra` is appended inside
 * the object (empty, or `,"name":value` fields of the client's own).
 */
static void print_result(uint32_t *lat, size_t nlat, uint64_t rounds, uint64_t bad, double elapsed,
                         uint64_t client_cpu, const char *extra) {
  qsort(lat, nlat, sizeof *lat, cmp_u32);
  printf("{\"roundTripsPerSecond\":%.0f,\"p50us\":%u,\"p99us\":%u,\"maxUs\":%u,\"rounds\":%llu,\"badBytes\":%llu,\"seconds\":%.3f,\"clientCpuUs\":%llu%s}\n",
         (double)rounds / elapsed, lat[nlat / 2], lat[(size_t)((double)nlat * 0.99)], lat[nlat - 1],
         (unsigned long long)rounds, (unsigned long long)bad, elapsed, (unsigned long long)client_cpu, extra);
}

#endif
