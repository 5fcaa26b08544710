/*
 * The selector's system calls: non-blocking sockets (TCP, UDP, Unix) and
 * pipes, each done when JavaScript asks, with the descriptors the poller
 * reports ready, and the TCP options a connection asks for (TCP_NODELAY is
 * on for every TCP connection unless it asks otherwise). Nothing is read
 * or written on the program's behalf. Each returns a negative errno on
 * failure (-EAGAIN when it would block).
 */
#include "selector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

/* -------------------------------------------------------------- helpers */

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

/* ----------------------------------------------------------- TCP options */

/* The keep-alive idle time's socket option: TCP_KEEPIDLE (Linux, BSDs),
 * TCP_KEEPALIVE (macOS). */
#if defined(TCP_KEEPIDLE)
#define KEEPALIVE_IDLE TCP_KEEPIDLE
#elif defined(TCP_KEEPALIVE)
#define KEEPALIVE_IDLE TCP_KEEPALIVE
#endif

/* The keep-alive idle time in whole seconds for `ms` (rounded up: never
 * sooner than asked), within what the option takes (Linux: 1..32767). */
static int keepalive_seconds(double ms) {
  double s = ms / 1000.0;
  int whole = s >= 32767.0 ? 32767 : (int)s;
  if (whole < s && whole < 32767) whole++;
  return whole < 1 ? 1 : whole;
}

/* setTcpOptions(fd, noDelay | null, keepAliveMs | null) -> 0 | -errno:
 * TCP_NODELAY; SO_KEEPALIVE off (-1), on with the system's idle time (0),
 * or on after keepAliveMs idle (rounded up to whole seconds). */
static napi_value js_set_tcp_options(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (get_args(env, info, 3, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  napi_valuetype type;
  if (napi_typeof(env, argv[1], &type) != napi_ok) return NULL;
  if (type == napi_boolean) {
    bool on = false;
    napi_get_value_bool(env, argv[1], &on);
    int value = on ? 1 : 0;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &value, sizeof value) < 0) return int_value(env, -errno);
  }
  if (napi_typeof(env, argv[2], &type) != napi_ok) return NULL;
  if (type == napi_number) {
    double ms = -1;
    napi_get_value_double(env, argv[2], &ms);
    int on = ms >= 0 ? 1 : 0;
    if (setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &on, sizeof on) < 0) return int_value(env, -errno);
#ifdef KEEPALIVE_IDLE
    if (ms > 0) {
      int idle = keepalive_seconds(ms);
      if (setsockopt(fd, IPPROTO_TCP, KEEPALIVE_IDLE, &idle, sizeof idle) < 0) return int_value(env, -errno);
    }
#endif
  }
  return int_value(env, 0);
}

/* tcpOptions(fd) -> [noDelay 0|1, keepAlive 0|1, keep-alive idle seconds] | -errno */
static napi_value js_tcp_options(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  int values[3] = {0, 0, 0};
  socklen_t len = sizeof values[0];
  if (getsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &values[0], &len) < 0) return int_value(env, -errno);
  len = sizeof values[1];
  if (getsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &values[1], &len) < 0) return int_value(env, -errno);
#ifdef KEEPALIVE_IDLE
  len = sizeof values[2];
  if (getsockopt(fd, IPPROTO_TCP, KEEPALIVE_IDLE, &values[2], &len) < 0) return int_value(env, -errno);
#endif
  napi_value out;
  CHECK(napi_create_array_with_length(env, 3, &out));
  for (uint32_t i = 0; i < 3; i++) napi_set_element(env, out, i, int_value(env, values[i] != 0 && i < 2 ? 1 : values[i]));
  return out;
}

/* ---------------------------------------------------------------- exports */

napi_value define_socket_calls(napi_env env, napi_value exports) {
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
      {"setTcpOptions", NULL, js_set_tcp_options, NULL, NULL, NULL, napi_default, NULL},
      {"tcpOptions", NULL, js_tcp_options, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions));
  napi_value codes;
  CHECK(napi_create_object(env, &codes));
  napi_set_named_property(env, codes, "EAGAIN", int_value(env, EAGAIN));
  napi_set_named_property(env, codes, "EINPROGRESS", int_value(env, EINPROGRESS));
  napi_set_named_property(env, exports, "errno", codes);
  return exports;
}
