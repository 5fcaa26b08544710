/*
 * The load client of the TLS echo benchmark: bench/tcp/echo-client.c's
 * ping-pong over TLS, with OpenSSL (Debian's libssl-dev) and epoll, so
 * that the client is not the bottleneck on a 2-core machine.
 *
 *   tls-echo-client HOST PORT CONNECTIONS MESSAGE_BYTES SECONDS CA_FILE
 *
 * Each connection shakes hands first (TLS 1.3, the server's certificate
 * verified against CA_FILE and its IP address; handshakes are not timed),
 * then sends one message, waits until the whole message has come back
 * (checked byte for byte), and sends the next. Prints one JSON line:
 * round trips per second, latency percentiles in microseconds, how many
 * bytes failed the check (must be 0), the CPU time the client used while
 * measuring, and the cipher negotiated.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../tcp/echo-client.h"

typedef struct {
  int fd;
  SSL *ssl;
  size_t received;
  uint64_t started_ns;
  uint32_t round;
} conn;

static void fail(const char *what) {
  fprintf(stderr, "tls-echo-client: %s: ", what);
  ERR_print_errors_fp(stderr);
  fprintf(stderr, "\n");
  exit(1);
}

/* Waits until `fd` can do what SSL asked for (`error`: SSL_ERROR_WANT_READ or _WRITE). */
static void wait_for(int fd, int error) {
  struct pollfd p = {.fd = fd, .events = error == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT};
  if (poll(&p, 1, 10000) <= 0) {
    fprintf(stderr, "tls-echo-client: the server stopped answering\n");
    exit(1);
  }
}

/* Writes all of `msg` (the socket is non-blocking: a full buffer is waited out). */
static void send_all(conn *c, const uint8_t *msg, size_t size) {
  size_t off = 0;
  while (off < size) {
    int n = SSL_write(c->ssl, msg + off, (int)(size - off));
    if (n > 0) {
      off += (size_t)n;
      continue;
    }
    int error = SSL_get_error(c->ssl, n);
    if (error != SSL_ERROR_WANT_READ && error != SSL_ERROR_WANT_WRITE) fail("SSL_write");
    wait_for(c->fd, error);
  }
}

int main(int argc, char **argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s HOST PORT CONNECTIONS MESSAGE_BYTES SECONDS CA_FILE\n", argv[0]);
    return 2;
  }
  const char *host = argv[1];
  int port = atoi(argv[2]), nconn = atoi(argv[3]);
  size_t size = (size_t)atol(argv[4]);
  double seconds = atof(argv[5]);
  if (nconn <= 0 || size == 0 || seconds <= 0) {
    fprintf(stderr, "tls-echo-client: bad arguments\n");
    return 2;
  }
  struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
    fprintf(stderr, "tls-echo-client: bad host %s\n", host);
    return 2;
  }
  SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  if (SSL_CTX_load_verify_locations(ctx, argv[6], NULL) != 1) fail("the CA file");
  SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
  /* SSL_write may be retried with the same data from a moved buffer (the message is rebuilt per round). */
  SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);

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
      fprintf(stderr, "tls-echo-client: connect: %s\n", strerror(errno));
      return 1;
    }
    SSL *ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
    if (SSL_connect(ssl) != 1) fail("the handshake");
    /* Non-blocking from here: reads come from epoll. */
    fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
    conns[i].fd = fd;
    conns[i].ssl = ssl;
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
  }
  const char *cipher = SSL_get_cipher_name(conns[0].ssl);
  uint64_t start = now_ns(), end = start + (uint64_t)(seconds * 1e9);
  uint64_t cpu_start = cpu_us();
  for (int i = 0; i < nconn; i++) {
    fill(out, size, 0, i);
    conns[i].started_ns = now_ns();
    send_all(&conns[i], out, size);
  }
  struct epoll_event events[256];
  int running = 1;
  while (running) {
    int n = epoll_wait(ep, events, 256, 1000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      fprintf(stderr, "tls-echo-client: the server stopped answering\n");
      return 1;
    }
    for (int e = 0; e < n && running; e++) {
      int id = (int)events[e].data.u32;
      conn *c = &conns[id];
      /* Read until OpenSSL wants more from the socket: it may hold whole records already. */
      for (;;) {
        int got = SSL_read(c->ssl, in, (int)(size - c->received));
        if (got <= 0) {
          int error = SSL_get_error(c->ssl, got);
          if (error == SSL_ERROR_WANT_READ) break;
          if (error == SSL_ERROR_ZERO_RETURN) fprintf(stderr, "tls-echo-client: read: end of stream\n");
          else fail("SSL_read");
          return 1;
        }
        fill(expect, size, c->round, id);
        for (int k = 0; k < got; k++) bad += in[k] != expect[c->received + (size_t)k];
        c->received += (size_t)got;
        if (c->received < size) continue;
        uint64_t t = now_ns();
        if (nlat < cap) lat[nlat++] = (uint32_t)((t - c->started_ns) / 1000);
        rounds++;
        if (t >= end) {
          running = 0;
          break;
        }
        c->round++;
        c->received = 0;
        fill(out, size, c->round, id);
        c->started_ns = t;
        send_all(c, out, size);
      }
    }
  }
  double elapsed = (double)(now_ns() - start) / 1e9;
  uint64_t client_cpu = cpu_us() - cpu_start;
  char extra[128];
  snprintf(extra, sizeof extra, ",\"cipher\":\"%s\"", cipher);
  print_result(lat, nlat, rounds, bad, elapsed, client_cpu, extra);
  return 0;
}
