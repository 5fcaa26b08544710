/*
 * wasmloop's native selector for Node.js: readiness of file descriptors from
 * libuv's uv_poll (epoll on Linux), and non-blocking socket system calls done
 * on demand. Nothing is read or written on the program's behalf.
 *
 * Readiness is delivered in batches: uv_poll callbacks queue tokens, and one
 * uv_check callback per libuv iteration hands them to JavaScript in a shared
 * Uint32Array, so a burst of ready sockets costs one call into JavaScript.
 *
 * Every function returns a negative errno on failure (as -EAGAIN when an
 * operation would block); JavaScript turns those into errors.
 *
 * Built by the Makefile with the C compiler and Node's own headers; no
 * node-gyp.
 */
#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <limits.h>
#include <node_api.h>
#include <uv.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define READABLE 1
#define WRITABLE 2
#define NO_TOKEN 0xffffffffu

#ifndef NODE_GYP_MODULE_NAME
#define NODE_GYP_MODULE_NAME wasmloop_selector
#endif

/* --------------------------------------------------------------- helpers */

#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error(env, NULL, "wasmloop selector: N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/* The call's arguments, at least `n` of the `*argc` that `argv` holds
 * (`*argc` becomes how many were passed), and its receiver if `self`. */
static int get_call(napi_env env, napi_callback_info info, size_t n, size_t *argc, napi_value *argv, napi_value *self) {
  if (napi_get_cb_info(env, info, argc, argv, self, NULL) != napi_ok) return -1;
  if (*argc < n) {
    napi_throw_type_error(env, NULL, "wasmloop selector: missing arguments");
    return -1;
  }
  return 0;
}

static int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  return get_call(env, info, n, &argc, argv, NULL);
}

static int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "wasmloop selector: expected a number");
    return -1;
  }
  return 0;
}

/* A listen backlog: any number, clamped to 0..INT_MAX (listen(2) clamps
 * what exceeds the system's maximum itself). Never NOT_LISTENING: a
 * backlog of 2^31 read as an int32 wrapped negative, and listen() was
 * skipped. */
static int get_backlog(napi_env env, napi_value v, int *out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) {
    napi_throw_type_error(env, NULL, "wasmloop selector: expected a number");
    return -1;
  }
  *out = !(d >= 0) ? 0 : d >= (double)INT_MAX ? INT_MAX : (int)d;
  return 0;
}

/* Parses a numeric IPv4 or IPv6 address and port into `sa`. */
static int make_address(napi_env env, napi_value host, int32_t port, struct sockaddr_storage *sa, socklen_t *len) {
  char text[64];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, host, text, sizeof text, &n) != napi_ok) return -EINVAL;
  memset(sa, 0, sizeof *sa);
  struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
  struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
  if (inet_pton(AF_INET, text, &v4->sin_addr) == 1) {
    v4->sin_family = AF_INET;
    v4->sin_port = htons((uint16_t)port);
    *len = sizeof *v4;
    return 0;
  }
  if (inet_pton(AF_INET6, text, &v6->sin6_addr) == 1) {
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons((uint16_t)port);
    *len = sizeof *v6;
    return 0;
  }
  return -EINVAL;
}

static napi_value address_string(napi_env env, struct sockaddr_storage *sa, socklen_t len) {
  char text[160];
  char ip[64];
  int port = 0;
  int family = 4;
  if (sa->ss_family == AF_UNIX) {
    /* "unix PATH"; an unnamed end (a connecting client's) has no path. */
    struct sockaddr_un *un = (struct sockaddr_un *)sa;
    size_t path_len = len > offsetof(struct sockaddr_un, sun_path) ? len - offsetof(struct sockaddr_un, sun_path) : 0;
    path_len = strnlen(un->sun_path, path_len < sizeof un->sun_path ? path_len : sizeof un->sun_path);
    snprintf(text, sizeof text, "unix %.*s", (int)path_len, un->sun_path);
    napi_value out;
    napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out);
    return out;
  }
  if (sa->ss_family == AF_INET6) {
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)sa;
    inet_ntop(AF_INET6, &v6->sin6_addr, ip, sizeof ip);
    port = ntohs(v6->sin6_port);
    family = 6;
  } else {
    struct sockaddr_in *v4 = (struct sockaddr_in *)sa;
    inet_ntop(AF_INET, &v4->sin_addr, ip, sizeof ip);
    port = ntohs(v4->sin_port);
  }
  snprintf(text, sizeof text, "%d %s %d", family, ip, port);
  napi_value out;
  napi_create_string_utf8(env, text, NAPI_AUTO_LENGTH, &out);
  return out;
}

static void tune_tcp(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

/* Returns the byte range [data, data + length) of a Uint8Array argument. */
static int get_bytes(napi_env env, napi_value array, napi_value offset, napi_value length, uint8_t **data, size_t *n) {
  napi_typedarray_type type;
  size_t count;
  void *base;
  if (napi_get_typedarray_info(env, array, &type, &count, &base, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    napi_throw_type_error(env, NULL, "wasmloop selector: expected a Uint8Array");
    return -1;
  }
  int32_t off, len;
  if (get_i32(env, offset, &off) || get_i32(env, length, &len)) return -1;
  if (off < 0 || len < 0 || (size_t)off + (size_t)len > count) {
    napi_throw_range_error(env, NULL, "wasmloop selector: range outside the buffer");
    return -1;
  }
  *data = (uint8_t *)base + off;
  *n = (size_t)len;
  return 0;
}

/* ---------------------------------------------------------- system calls */

/* Where a datagram socket's backlog goes: it does not listen. */
#define NOT_LISTENING (-1)

/* A non-blocking socket of `type` bound to `sa`, listening with `backlog`
 * unless it is NOT_LISTENING (a datagram socket): fd | -errno. */
static int open_bound(const struct sockaddr *sa, socklen_t len, int type, int backlog, bool reuse_addr, bool reuse_port) {
  int fd = socket(sa->sa_family, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  int one = 1;
  if (reuse_addr) setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
  if (reuse_port) setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
  if (bind(fd, sa, len) < 0 || (backlog != NOT_LISTENING && listen(fd, backlog) < 0)) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

/* A non-blocking stream socket connecting to `sa`; the connection is made
 * (or refused) when it becomes writable: fd | -errno. */
static int open_connecting(const struct sockaddr *sa, socklen_t len) {
  int fd = socket(sa->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return -errno;
  if (sa->sa_family != AF_UNIX) tune_tcp(fd);
  if (connect(fd, sa, len) < 0 && errno != EINPROGRESS) {
    int err = errno;
    close(fd);
    return -err;
  }
  return fd;
}

/* listen(host, port, backlog, reusePort?) -> fd | -errno */
static napi_value js_listen(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  size_t argc = 4;
  if (get_call(env, info, 3, &argc, argv, NULL)) return NULL;
  bool reuse_port = false;
  if (argc >= 4) napi_get_value_bool(env, argv[3], &reuse_port);
  int32_t port;
  int backlog;
  if (get_i32(env, argv[1], &port) || get_backlog(env, argv[2], &backlog)) return NULL;
  struct sockaddr_storage sa;
  socklen_t len;
  int rc = make_address(env, argv[0], port, &sa, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, open_bound((struct sockaddr *)&sa, len, SOCK_STREAM, backlog, true, reuse_port));
}

/* A Unix domain socket address for the path argument; -ENAMETOOLONG if it
 * does not fit (sun_path holds 107 bytes and the NUL). */
static int make_unix_address(napi_env env, napi_value path, struct sockaddr_un *un, socklen_t *len) {
  memset(un, 0, sizeof *un);
  size_t n = 0;
  if (napi_get_value_string_utf8(env, path, un->sun_path, sizeof un->sun_path, &n) != napi_ok) return -EINVAL;
  size_t full = 0;
  if (napi_get_value_string_utf8(env, path, NULL, 0, &full) != napi_ok) return -EINVAL;
  if (full >= sizeof un->sun_path || full == 0) return -ENAMETOOLONG;
  un->sun_family = AF_UNIX;
  *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + 1);
  return 0;
}

/* listenUnix(path, backlog) -> fd | -errno (-EADDRINUSE if the path exists) */
static napi_value js_listen_unix(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int backlog;
  if (get_backlog(env, argv[1], &backlog)) return NULL;
  struct sockaddr_un un;
  socklen_t len;
  int rc = make_unix_address(env, argv[0], &un, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, open_bound((struct sockaddr *)&un, len, SOCK_STREAM, backlog, false, false));
}

/* connectUnix(path) -> fd | -errno; as connect, done when the fd is writable. */
static napi_value js_connect_unix(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  struct sockaddr_un un;
  socklen_t len;
  int rc = make_unix_address(env, argv[0], &un, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, open_connecting((struct sockaddr *)&un, len));
}

/* unlink(path) -> 0 | -errno: removes a closed Unix listener's socket file. */
static napi_value js_unlink(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  char path[sizeof ((struct sockaddr_un *)0)->sun_path];
  size_t n = 0;
  if (napi_get_value_string_utf8(env, argv[0], path, sizeof path, &n) != napi_ok) return int_value(env, -EINVAL);
  return int_value(env, unlink(path) < 0 ? -errno : 0);
}

/* ------------------------------------------------------------- datagrams */

/* The sender of the last datagram recvFrom received (recvAddress() reads it).
 * Per thread: loops in worker threads share this library. */
static _Thread_local struct sockaddr_storage last_sender;
static _Thread_local socklen_t last_sender_len;

/* udpBind(host, port) -> fd | -errno: a non-blocking UDP socket bound there. */
static napi_value js_udp_bind(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int32_t port;
  if (get_i32(env, argv[1], &port)) return NULL;
  struct sockaddr_storage sa;
  socklen_t len;
  int rc = make_address(env, argv[0], port, &sa, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, open_bound((struct sockaddr *)&sa, len, SOCK_DGRAM, NOT_LISTENING, false, false));
}

/* udpConnect(fd, host, port) -> 0 | -errno: the default destination, and
 * the only source datagrams are then taken from. */
static napi_value js_udp_connect(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  int32_t fd, port;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[2], &port)) return NULL;
  struct sockaddr_storage sa;
  socklen_t len;
  int rc = make_address(env, argv[1], port, &sa, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, connect(fd, (struct sockaddr *)&sa, len) < 0 ? -errno : 0);
}

/* sendTo(fd, bytes, offset, length, host | null, port) -> bytes sent | -errno;
 * a null host sends to the connected destination. */
static napi_value js_send_to(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (get_args(env, info, 6, argv)) return NULL;
  int32_t fd, port;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[5], &port)) return NULL;
  uint8_t *data;
  size_t n;
  if (get_bytes(env, argv[1], argv[2], argv[3], &data, &n)) return NULL;
  napi_valuetype host_type;
  if (napi_typeof(env, argv[4], &host_type) != napi_ok) return NULL;
  ssize_t sent;
  if (host_type == napi_null) {
    sent = send(fd, data, n, MSG_NOSIGNAL);
  } else {
    struct sockaddr_storage sa;
    socklen_t len;
    int rc = make_address(env, argv[4], port, &sa, &len);
    if (rc) return int_value(env, rc);
    sent = sendto(fd, data, n, MSG_NOSIGNAL, (struct sockaddr *)&sa, len);
  }
  return int_value(env, sent < 0 ? -errno : sent);
}

/* recvFrom(fd, bytes, offset, length) -> datagram length | -errno (-EAGAIN:
 * none waiting). A datagram longer than length is cut (its full length is
 * still returned, as MSG_TRUNC reports it). */
static napi_value js_recv_from(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  uint8_t *data;
  size_t n;
  if (get_bytes(env, argv[1], argv[2], argv[3], &data, &n)) return NULL;
  last_sender_len = sizeof last_sender;
  ssize_t got = recvfrom(fd, data, n, MSG_TRUNC, (struct sockaddr *)&last_sender, &last_sender_len);
  return int_value(env, got < 0 ? -errno : got);
}

/* recvAddress() -> "family ip port" of the last datagram's sender. */
static napi_value js_recv_address(napi_env env, napi_callback_info info) {
  (void)info;
  return address_string(env, &last_sender, last_sender_len);
}

/* accept(fd) -> fd | -errno (-EAGAIN: no pending connection) */
static napi_value js_accept(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  int conn = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
  if (conn < 0) return int_value(env, -errno);
  tune_tcp(conn);
  return int_value(env, conn);
}

/* connect(host, port) -> fd | -errno; the connection completes when the fd
 * becomes writable (then connectError(fd) tells how it went). */
static napi_value js_connect(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int32_t port;
  if (get_i32(env, argv[1], &port)) return NULL;
  struct sockaddr_storage sa;
  socklen_t len;
  int rc = make_address(env, argv[0], port, &sa, &len);
  if (rc) return int_value(env, rc);
  return int_value(env, open_connecting((struct sockaddr *)&sa, len));
}

/* connectError(fd) -> 0 | -errno (SO_ERROR) */
static napi_value js_connect_error(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0) return int_value(env, -errno);
  return int_value(env, -err);
}

/* read(fd, bytes, offset, length) -> n | 0 at end of stream | -errno */
static napi_value js_read(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  int32_t fd;
  uint8_t *data;
  size_t n;
  if (get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], argv[2], argv[3], &data, &n)) return NULL;
  ssize_t got;
  do got = read(fd, data, n);
  while (got < 0 && errno == EINTR);
  return int_value(env, got < 0 ? -errno : got);
}

/* write(fd, bytes, offset, length) -> n | -errno */
static napi_value js_write(napi_env env, napi_callback_info info) {
  napi_value argv[4];
  if (get_args(env, info, 4, argv)) return NULL;
  int32_t fd;
  uint8_t *data;
  size_t n;
  if (get_i32(env, argv[0], &fd) || get_bytes(env, argv[1], argv[2], argv[3], &data, &n)) return NULL;
  ssize_t put;
  do put = send(fd, data, n, MSG_NOSIGNAL);
  while (put < 0 && errno == EINTR);
  if (put < 0 && errno == ENOTSOCK) {
    do put = write(fd, data, n);
    while (put < 0 && errno == EINTR);
  }
  return int_value(env, put < 0 ? -errno : put);
}

/* shutdownWrite(fd) -> 0 | -errno: half-close, the peer reads end of stream */
static napi_value js_shutdown_write(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  return int_value(env, shutdown(fd, SHUT_WR) < 0 ? -errno : 0);
}

/* close(fd) -> 0 | -errno */
static napi_value js_close(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  return int_value(env, close(fd) < 0 ? -errno : 0);
}

/* address(fd, peer) -> "family ip port" | -errno */
static napi_value js_address(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  if (get_args(env, info, 2, argv)) return NULL;
  int32_t fd;
  bool peer;
  if (get_i32(env, argv[0], &fd) || napi_get_value_bool(env, argv[1], &peer) != napi_ok) return NULL;
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  int rc = peer ? getpeername(fd, (struct sockaddr *)&sa, &len) : getsockname(fd, (struct sockaddr *)&sa, &len);
  if (rc < 0) return int_value(env, -errno);
  return address_string(env, &sa, len);
}

/* pipe() -> [readFd, writeFd], both non-blocking, or -errno */
static napi_value js_pipe(napi_env env, napi_callback_info info) {
  (void)info;
  int fds[2];
  if (pipe2(fds, O_NONBLOCK | O_CLOEXEC) < 0) return int_value(env, -errno);
  napi_value out;
  CHECK(napi_create_array_with_length(env, 2, &out));
  napi_set_element(env, out, 0, int_value(env, fds[0]));
  napi_set_element(env, out, 1, int_value(env, fds[1]));
  return out;
}

/* -------------------------------------------------------------- the poller */

/*
 * Readiness reaches JavaScript as tokens, collected during libuv's poll
 * phase and handed over once per libuv iteration (the check phase); the
 * program reads and writes afterwards, in the loop's callbacks.
 *
 * On Linux the poller keeps an epoll set of its own, and libuv watches that
 * one descriptor. Two reasons:
 *
 * - One epoll_wait per libuv iteration, for at most as many events as there
 *   is room for tokens. A descriptor watched through libuv directly stays
 *   readable until the program reads it, after the poll phase; libuv's own
 *   poll goes on waiting (up to 48 rounds of 1,024 events) while whole rounds
 *   come back, and with thousands of busy connections it polls the same
 *   unread sockets over and over: most of a server's time at 10,000
 *   connections went to tcp_poll that way.
 * - Edge-triggered watches: a watch the program marks `edge` (its watcher
 *   reads or writes until the kernel would block, or until a short read or
 *   write, before it waits again) is registered with EPOLLET, so a socket
 *   that was reported is not polled again until something new happens to
 *   it. Other watches (addReader, listeners, UDP) are level-triggered, as
 *   asyncio's selectors are.
 *
 * Elsewhere each descriptor is a uv_poll watch, level-triggered whatever the
 * program asked for, which every watcher handles.
 */

typedef struct poller poller;

static void queue_token(poller *p, uint32_t token);

#ifdef __linux__
#include <sys/epoll.h>

/* One descriptor's watch, in a table indexed by descriptor. */
typedef struct watch {
  uint32_t tokens[3]; /* by direction: [READABLE], [WRITABLE]; NO_TOKEN when not watched */
  uint8_t edge[3];    /* by direction: the watcher handles edge-triggered readiness */
  uint8_t hung_up;    /* the peer hung up or the socket failed: level-triggered from then on */
  uint32_t events;    /* what the epoll set holds for it; 0 when it is not in the set */
} watch;

struct poller {
  napi_env env;
  uv_loop_t *loop;
  uv_check_t check;
  uv_poll_t set_handle; /* libuv's watch on the epoll set */
  int epfd;
  int watching;         /* descriptors in the set */
  watch *table;         /* by descriptor, so a watch costs the same with 10,000 as with 1 */
  int table_len;
  napi_ref callback;
  napi_ref buffer_ref; /* Uint32Array shared with JavaScript */
  uint32_t *buffer;
  uint32_t capacity;
  uint32_t count;
  int closed;
  napi_async_context context;
};

/* Events taken from the epoll set per libuv iteration, at most. */
#define WAIT_EVENTS 1024

/* The epoll set is readable: collect what is ready, as tokens. */
static void on_set_ready(uv_poll_t *handle, int status, int events) {
  (void)status;
  (void)events;
  poller *p = (poller *)handle->data;
  /* Each event gives at most two tokens. What is not collected now stays in
   * the set's ready list, which keeps the set readable: libuv reports it
   * again on its next iteration, after the program has had its turn. */
  uint32_t room = (p->capacity - p->count) / 2;
  int max = room < WAIT_EVENTS ? (int)room : WAIT_EVENTS;
  if (max == 0) return;
  struct epoll_event ready[WAIT_EVENTS];
  int n = epoll_wait(p->epfd, ready, max, 0);
  for (int i = 0; i < n; i++) {
    int fd = (int)ready[i].data.u32;
    if (fd >= p->table_len || p->table[fd].events == 0) continue;
    watch *w = &p->table[fd];
    uint32_t ev = ready[i].events;
    if ((ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !w->hung_up) {
      /* A watcher that stops at a short read may not have read the end of
       * the stream yet, and no new edge will come for it: from now on the
       * descriptor is reported for as long as it stays readable. */
      w->hung_up = 1;
      if (w->events & EPOLLET) {
        struct epoll_event e = {.events = w->events & ~EPOLLET, .data = {.u32 = (uint32_t)fd}};
        if (epoll_ctl(p->epfd, EPOLL_CTL_MOD, fd, &e) == 0) w->events = e.events;
      }
    }
    /* An error or hang-up wakes both directions: the program's read or
     * write reports it (as libuv's uv_poll does). */
    if (ev & (EPOLLERR | EPOLLHUP)) ev |= EPOLLIN | EPOLLOUT;
    if (ev & (EPOLLIN | EPOLLRDHUP)) queue_token(p, w->tokens[READABLE]);
    if (ev & EPOLLOUT) queue_token(p, w->tokens[WRITABLE]);
  }
}

/* Brings the epoll set in line with `fd`'s watch: 0 or -errno. `resync`:
 * tell the kernel again even if nothing changed here (a watch registered
 * anew: its descriptor may have been closed and its number reused, and the
 * kernel drops a closed descriptor from the set). */
static int apply(poller *p, int fd, int resync) {
  watch *w = &p->table[fd];
  uint32_t want = 0;
  int edge = 1;
  if (w->tokens[READABLE] != NO_TOKEN) {
    want |= EPOLLIN | EPOLLRDHUP;
    edge &= w->edge[READABLE];
  }
  if (w->tokens[WRITABLE] != NO_TOKEN) {
    want |= EPOLLOUT;
    edge &= w->edge[WRITABLE];
  }
  if (want != 0 && edge && !w->hung_up) want |= EPOLLET;
  if (want == w->events && !(resync && want != 0)) return 0;
  struct epoll_event e = {.events = want, .data = {.u32 = (uint32_t)fd}};
  if (want == 0) {
    /* Out of the set at once, so the program may close the fd right after. */
    epoll_ctl(p->epfd, EPOLL_CTL_DEL, fd, &e);
    w->events = 0;
    w->hung_up = 0; /* the number may next belong to another socket */
    /* Watches keep the process alive, as uv_poll watches do; none, none. */
    if (--p->watching == 0) uv_poll_stop(&p->set_handle);
    return 0;
  }
  int adding = w->events == 0;
  if (adding && p->watching == 0) {
    int rc = uv_poll_start(&p->set_handle, UV_READABLE, on_set_ready);
    if (rc < 0) return rc;
  }
  /* ADD and MOD both report at once what is ready now, edge-triggered too. */
  int failed = epoll_ctl(p->epfd, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e) < 0;
  /* ENOENT: the descriptor was closed while watched and the number reused
   * (the kernel dropped it from the set): add it again. */
  if (failed && !adding && errno == ENOENT) failed = epoll_ctl(p->epfd, EPOLL_CTL_ADD, fd, &e) < 0;
  if (failed) {
    int rc = -errno;
    if (adding && p->watching == 0) uv_poll_stop(&p->set_handle);
    return rc;
  }
  if (adding) p->watching++;
  w->events = want;
  return 0;
}

/* The table entry for `fd`, grown as needed; NULL when out of memory. */
static watch *entry(poller *p, int fd) {
  if (fd < p->table_len) return &p->table[fd];
  int len = p->table_len == 0 ? 256 : p->table_len;
  while (len <= fd) len *= 2;
  watch *table = realloc(p->table, (size_t)len * sizeof *table);
  if (!table) return NULL;
  for (int i = p->table_len; i < len; i++) {
    table[i] = (watch){.tokens = {NO_TOKEN, NO_TOKEN, NO_TOKEN}, .edge = {0, 0, 0}, .hung_up = 0, .events = 0};
  }
  p->table = table;
  p->table_len = len;
  return &table[fd];
}

static int poller_watch(poller *p, int fd, int direction, uint32_t token, int edge) {
  if (fd < 0) return -EBADF;
  watch *w = entry(p, fd);
  if (!w) return -ENOMEM;
  uint32_t token_before = w->tokens[direction];
  uint8_t edge_before = w->edge[direction];
  w->tokens[direction] = token;
  w->edge[direction] = (uint8_t)(edge != 0);
  /* Watched in this direction already: registered anew, so tell the kernel
   * again (the number may belong to a new descriptor since). */
  int rc = apply(p, fd, token_before != NO_TOKEN);
  if (rc < 0) {
    /* Nothing changed in the set: neither here. */
    w->tokens[direction] = token_before;
    w->edge[direction] = edge_before;
  }
  return rc;
}

static void poller_unwatch(poller *p, int fd, int direction) {
  if (fd < 0 || fd >= p->table_len) return;
  p->table[fd].tokens[direction] = NO_TOKEN;
  apply(p, fd, 0);
}

static int poller_init(poller *p) {
  p->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (p->epfd < 0) return -errno;
  int rc = uv_poll_init(p->loop, &p->set_handle, p->epfd);
  if (rc < 0) {
    close(p->epfd);
    return rc;
  }
  p->set_handle.data = p;
  return 0;
}

static void free_poller(uv_handle_t *handle) {
  poller *p = (poller *)handle->data;
  /* Only now, with libuv done with its handle: closed earlier, the number
   * could go to a new poller's set while libuv still held this handle, and
   * closing the handle would take that set out of libuv's epoll. */
  close(p->epfd);
  free(p->table);
  free(p);
}

static void close_set(uv_handle_t *handle) {
  /* The check handle is closed: the set's handle goes last and frees the poller. */
  poller *p = (poller *)handle->data;
  uv_close((uv_handle_t *)&p->set_handle, free_poller);
}

static void poller_close(poller *p) {
  uv_poll_stop(&p->set_handle);
  uv_check_stop(&p->check);
  uv_close((uv_handle_t *)&p->check, close_set);
}

#else /* not Linux: a uv_poll watch per descriptor */

typedef struct watch {
  uv_poll_t handle;
  poller *owner;
  int fd;
  int events;
  uint32_t tokens[3]; /* by direction: [READABLE], [WRITABLE] */
} watch;

struct poller {
  napi_env env;
  uv_loop_t *loop;
  uv_check_t check;
  watch **by_fd; /* by descriptor, NULL where none */
  int by_fd_len;
  napi_ref callback;
  napi_ref buffer_ref; /* Uint32Array shared with JavaScript */
  uint32_t *buffer;
  uint32_t capacity;
  uint32_t count;
  int closed;
  napi_async_context context;
};

static watch *find_watch(poller *p, int fd) {
  return fd >= 0 && fd < p->by_fd_len ? p->by_fd[fd] : NULL;
}

static void on_poll(uv_poll_t *handle, int status, int events) {
  watch *w = (watch *)handle->data;
  poller *p = w->owner;
  if (status < 0) events = w->events; /* an error: wake both directions, the program's read or write reports it */
  if (events & UV_READABLE) queue_token(p, w->tokens[READABLE]);
  if (events & (UV_WRITABLE | UV_DISCONNECT)) queue_token(p, w->tokens[WRITABLE]);
  if ((events & UV_DISCONNECT) && !(events & UV_READABLE)) queue_token(p, w->tokens[READABLE]);
}

static void free_watch(uv_handle_t *handle) {
  free(handle->data);
}

static int apply(poller *p, watch *w) {
  int uv_events = 0;
  if (w->tokens[READABLE] != NO_TOKEN) uv_events |= UV_READABLE | UV_DISCONNECT;
  if (w->tokens[WRITABLE] != NO_TOKEN) uv_events |= UV_WRITABLE;
  w->events = uv_events;
  if (uv_events == 0) {
    /* Closing the handle stops polling the fd at once, so the program may
     * close the fd right after. */
    p->by_fd[w->fd] = NULL;
    uv_close((uv_handle_t *)&w->handle, free_watch);
    return 0;
  }
  return uv_poll_start(&w->handle, uv_events, on_poll);
}

static int poller_watch(poller *p, int fd, int direction, uint32_t token, int edge) {
  (void)edge; /* level-triggered here: every watcher handles that */
  if (fd < 0) return -EBADF;
  watch *w = find_watch(p, fd);
  if (!w) {
    if (fd >= p->by_fd_len) {
      int len = p->by_fd_len == 0 ? 256 : p->by_fd_len;
      while (len <= fd) len *= 2;
      watch **table = realloc(p->by_fd, (size_t)len * sizeof *table);
      if (!table) return -ENOMEM;
      memset(table + p->by_fd_len, 0, (size_t)(len - p->by_fd_len) * sizeof *table);
      p->by_fd = table;
      p->by_fd_len = len;
    }
    w = calloc(1, sizeof *w);
    if (!w) return -ENOMEM;
    int rc = uv_poll_init(p->loop, &w->handle, fd);
    if (rc < 0) {
      free(w);
      return rc;
    }
    w->handle.data = w;
    w->owner = p;
    w->fd = fd;
    w->tokens[READABLE] = w->tokens[WRITABLE] = NO_TOKEN;
    p->by_fd[fd] = w;
  }
  w->tokens[direction] = token;
  return apply(p, w);
}

static void poller_unwatch(poller *p, int fd, int direction) {
  watch *w = find_watch(p, fd);
  if (!w) return;
  w->tokens[direction] = NO_TOKEN;
  apply(p, w);
}

static int poller_init(poller *p) {
  (void)p;
  return 0;
}

static void free_poller(uv_handle_t *handle) {
  poller *p = (poller *)handle->data;
  free(p->by_fd);
  free(p);
}

static void poller_close(poller *p) {
  for (int fd = 0; fd < p->by_fd_len; fd++) {
    watch *w = p->by_fd[fd];
    if (!w) continue;
    p->by_fd[fd] = NULL;
    uv_close((uv_handle_t *)&w->handle, free_watch);
  }
  uv_check_stop(&p->check);
  uv_close((uv_handle_t *)&p->check, free_poller);
}

#endif

static void queue_token(poller *p, uint32_t token) {
  /* Full: a level-triggered watch is reported again next time; the epoll
   * set never hands over more edge-triggered events than there is room for. */
  if (token == NO_TOKEN || p->count == p->capacity) return;
  p->buffer[p->count++] = token;
}

/* Once per libuv iteration, after the poll phase: hand the batch to JavaScript. */
static void on_check(uv_check_t *handle) {
  poller *p = (poller *)handle->data;
  if (p->count == 0 || p->closed) return;
  napi_env env = p->env;
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value callback, recv, argv[1], result;
  napi_get_reference_value(env, p->callback, &callback);
  napi_get_global(env, &recv);
  argv[0] = int_value(env, p->count);
  p->count = 0;
  /* make_callback runs the microtasks and nextTicks the callback created. */
  napi_make_callback(env, p->context, recv, callback, 1, argv, &result);
  napi_close_handle_scope(env, scope);
}

/* A poller method's poller and arguments, as get_call; NULL (thrown) if the poller is closed. */
static poller *get_poller(napi_env env, napi_callback_info info, size_t n, size_t *argc, napi_value *argv) {
  napi_value self;
  void *data;
  if (get_call(env, info, n, argc, argv, &self)) return NULL;
  if (napi_unwrap(env, self, &data) != napi_ok || data == NULL) {
    napi_throw_error(env, NULL, "wasmloop selector: not a poller");
    return NULL;
  }
  poller *p = (poller *)data;
  if (p->closed) {
    napi_throw_error(env, NULL, "wasmloop selector: poller is closed");
    return NULL;
  }
  return p;
}

/* poller.watch(fd, direction, token, edge = false) -> 0 | -errno. `edge`:
 * the watcher handles edge-triggered readiness (see above); a hint. */
static napi_value js_watch(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4];
  poller *p = get_poller(env, info, 3, &argc, argv);
  if (!p) return NULL;
  int32_t fd, direction;
  uint32_t token;
  bool edge = false;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &direction)) return NULL;
  if (napi_get_value_uint32(env, argv[2], &token) != napi_ok) return NULL;
  if (argc > 3) napi_get_value_bool(env, argv[3], &edge);
  if (direction != READABLE && direction != WRITABLE) return int_value(env, -EINVAL);
  return int_value(env, poller_watch(p, fd, direction, token, edge));
}

/* poller.unwatch(fd, direction) -> 0 */
static napi_value js_unwatch(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  poller *p = get_poller(env, info, 2, &argc, argv);
  if (!p) return NULL;
  int32_t fd, direction;
  if (get_i32(env, argv[0], &fd) || get_i32(env, argv[1], &direction)) return NULL;
  if (direction == READABLE || direction == WRITABLE) poller_unwatch(p, fd, direction);
  return int_value(env, 0);
}

static void finalize_poller(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  poller *p = (poller *)data;
  if (!p->closed) {
    /* Collected without close(): nothing can be running any more. */
    p->closed = 1;
  }
}

/* poller.close(): stops every watch; the poller cannot be used again. */
static napi_value js_poller_close(napi_env env, napi_callback_info info) {
  napi_value self;
  void *data;
  size_t argc = 0;
  if (napi_get_cb_info(env, info, &argc, NULL, &self, NULL) != napi_ok) return NULL;
  if (napi_remove_wrap(env, self, &data) != napi_ok || data == NULL) return NULL;
  poller *p = (poller *)data;
  p->closed = 1;
  napi_delete_reference(env, p->callback);
  napi_delete_reference(env, p->buffer_ref);
  napi_async_destroy(env, p->context);
  poller_close(p);
  return NULL;
}

/* new Poller(onReady(count), tokens: Uint32Array) */
static napi_value js_poller_new(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2], self;
  CHECK(napi_get_cb_info(env, info, &argc, argv, &self, NULL));
  if (argc < 2) {
    napi_throw_type_error(env, NULL, "wasmloop selector: new Poller(onReady, tokens)");
    return NULL;
  }
  napi_typedarray_type type;
  size_t length;
  void *base;
  if (napi_get_typedarray_info(env, argv[1], &type, &length, &base, NULL, NULL) != napi_ok || type != napi_uint32_array) {
    napi_throw_type_error(env, NULL, "wasmloop selector: tokens must be a Uint32Array");
    return NULL;
  }
  if (length < 2) {
    napi_throw_range_error(env, NULL, "wasmloop selector: tokens must hold at least 2 entries");
    return NULL;
  }
  poller *p = calloc(1, sizeof *p);
  if (!p) {
    napi_throw_error(env, NULL, "wasmloop selector: out of memory");
    return NULL;
  }
  p->env = env;
  p->buffer = (uint32_t *)base;
  p->capacity = (uint32_t)length;
  CHECK(napi_get_uv_event_loop(env, &p->loop));
  if (poller_init(p) < 0) {
    free(p);
    napi_throw_error(env, NULL, "wasmloop selector: cannot create the poller's epoll set");
    return NULL;
  }
  CHECK(napi_create_reference(env, argv[0], 1, &p->callback));
  CHECK(napi_create_reference(env, argv[1], 1, &p->buffer_ref));
  napi_value name;
  napi_create_string_utf8(env, "wasmloop.selector", NAPI_AUTO_LENGTH, &name);
  CHECK(napi_async_init(env, NULL, name, &p->context));
  uv_check_init(p->loop, &p->check);
  p->check.data = p;
  uv_check_start(&p->check, on_check);
  /* The check handle alone must not keep the process alive: watches do. */
  uv_unref((uv_handle_t *)&p->check);
  CHECK(napi_wrap(env, self, p, finalize_poller, NULL, NULL));
  return self;
}

/* ------------------------------------------------------------------ module */

static napi_value init(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"listen", NULL, js_listen, NULL, NULL, NULL, napi_default, NULL},
      {"accept", NULL, js_accept, NULL, NULL, NULL, napi_default, NULL},
      {"connect", NULL, js_connect, NULL, NULL, NULL, napi_default, NULL},
      {"connectError", NULL, js_connect_error, NULL, NULL, NULL, napi_default, NULL},
      {"read", NULL, js_read, NULL, NULL, NULL, napi_default, NULL},
      {"write", NULL, js_write, NULL, NULL, NULL, napi_default, NULL},
      {"shutdownWrite", NULL, js_shutdown_write, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_close, NULL, NULL, NULL, napi_default, NULL},
      {"address", NULL, js_address, NULL, NULL, NULL, napi_default, NULL},
      {"pipe", NULL, js_pipe, NULL, NULL, NULL, napi_default, NULL},
      {"listenUnix", NULL, js_listen_unix, NULL, NULL, NULL, napi_default, NULL},
      {"connectUnix", NULL, js_connect_unix, NULL, NULL, NULL, napi_default, NULL},
      {"unlink", NULL, js_unlink, NULL, NULL, NULL, napi_default, NULL},
      {"udpBind", NULL, js_udp_bind, NULL, NULL, NULL, napi_default, NULL},
      {"udpConnect", NULL, js_udp_connect, NULL, NULL, NULL, napi_default, NULL},
      {"sendTo", NULL, js_send_to, NULL, NULL, NULL, napi_default, NULL},
      {"recvFrom", NULL, js_recv_from, NULL, NULL, NULL, napi_default, NULL},
      {"recvAddress", NULL, js_recv_address, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions));
  napi_property_descriptor methods[] = {
      {"watch", NULL, js_watch, NULL, NULL, NULL, napi_default, NULL},
      {"unwatch", NULL, js_unwatch, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_poller_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value poller_class;
  CHECK(napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, js_poller_new, NULL, 3, methods, &poller_class));
  CHECK(napi_set_named_property(env, exports, "Poller", poller_class));
  napi_value codes;
  CHECK(napi_create_object(env, &codes));
  napi_set_named_property(env, codes, "EAGAIN", int_value(env, EAGAIN));
  napi_set_named_property(env, codes, "EINPROGRESS", int_value(env, EINPROGRESS));
  napi_set_named_property(env, exports, "errno", codes);
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
