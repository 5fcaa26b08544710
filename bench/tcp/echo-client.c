/*
 * The load client of the TCP echo benchmark: C with epoll, so that the
 * client is not the bottleneck on a 2-core machine.
 *
 *   echo-client HOST PORT CONNECTIONS MESSAGE_BYTES SECONDS [ROUND_TRIPS]
 *
 * Each connection sends one message, waits until the whole message has come
 * back (and checks it byte for byte), then sends the next: ping-pong. Prints
 * one JSON line: round trips per second, latency percentiles in
 * microseconds, how many bytes failed the check (must be 0), and the CPU
 * time the client itself used while measuring (so a report can show when
 * the client, not the server, is what limits a run).
 *
 * With ROUND_TRIPS, the run ends after that many round trips (or SECONDS,
 * whichever comes first): a fixed amount of work, for counting what the
 * server does per round trip (its system calls, under strace).
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "echo-client.h"

typedef struct {
  int fd;
  size_t sent;
  size_t received;
  uint64_t started_ns;
  uint32_t round;
} conn;

int main(int argc, char **argv) {
  if (argc != 6 && argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MESSAGE_BYTES SECONDS [ROUND_TRIPS]\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nconn = atoi(argv[3]);
  size_t size = (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  uint64_t max_rounds = argc == 7 ? (uint64_t)atoll(argv[6]) : UINT64_MAX;
  if (nconn <= 0 || size == 0 || seconds <= 0) {
    fprintf(stderr, "echo-client: bad arguments\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "echo-client: bad host %s\n", host);
    return 2;
  }
  int ep = epoll_create1(0);
  conn *conns = calloc((size_t)nconn, sizeof *conns);
  uint8_t *out = malloc(size), *in = malloc(size), *expect = malloc(size);
  size_t cap = 1 << 22, nlat = 0;
  uint32_t *lat = malloc(cap * sizeof *lat);
  uint64_t bad = 0, rounds = 0;
  for (int i = 0; i < nconn; i++) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
      fprintf(stderr, "echo-client: connect: %s\n", strerror(errno));
      return 1;
    }
    conns[i].fd = fd;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
  uint64_t cpu_start = cpu_us();
  /* Kick off: each connection sends its first message. */
  for (int i = 0; i < nconn; i++) {
    fill(out, size, 0, i);
    conns[i].started_ns = now_ns();
    size_t off = 0;
    while (off < size) {
      ssize_t n = write(conns[i].fd, out + off, size - off);
      if (n < 0) {
        fprintf(stderr, "echo-client: write: %s\n", strerror(errno));
        return 1;
      }
      off += (size_t)n;
    }
  }
  struct epoll_event events[256];
  int running = 1;
  while (running) {
    int n = epoll_wait(ep, events, 256, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "echo-client: the server stopped answering\n");
      return 1;
    }
    for (int e = 0; e < n; e++) {
      conn *c = &conns[events[e].data.u32];
      ssize_t got = read(c->fd, in, size - c->received);
      if (got <= 0) {
        fprintf(stderr, "echo-client: read: %s\n", got == 0 ? "end of stream" : strerror(errno));
        return 1;
      }
      fill(expect, size, c->round, (int)events[e].data.u32);
      for (ssize_t k = 0; k < got; k++) bad += in[k] != expect[c->received + (size_t)k];
      c->received += (size_t)got;
      if (c->received < size) continue;
      uint64_t t = now_ns();
      if (nlat < cap) lat[nlat++] = (uint32_t)((t - c->started_ns) / 1000);
      rounds++;
      if (t >= end || rounds >= max_rounds) {
        running = 0;
        continue;
      }
      c->round++;
      c->received = 0;
      fill(out, size, c->round, (int)events[e].data.u32);
      c->started_ns = t;
      size_t off = 0;
      while (off < size) {
        ssize_t w = write(c->fd, out + off, size - off);
        if (w < 0) {
          fprintf(stderr, "echo-client: write: %s\n", strerror(errno));
          return 1;
        }
        off += (size_t)w;
      }
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  uint64_t client_cpu = cpu_us() - cpu_start;
  print_result(lat, nlat, rounds, bad, elapsed, client_cpu, "");
  return 0;
}
