/*
 * What the parts of wasmloop's native selector share (the N-API addon the
 * 'selector' backend loads on Node.js). Each part has one job:
 *
 *   selector.c       the addon itself: N-API argument helpers, the Poller
 *                    class, the batch of ready tokens handed to JavaScript
 *                    once per libuv iteration, the module's exports
 *   sockets.c        non-blocking socket and pipe system calls, done when
 *                    JavaScript asks; nothing is read or written on the
 *                    program's behalf
 *   inherited.c      listening sockets another process handed over:
 *                    checked, then adopted
 *   poller-epoll.c   the poller on Linux: a uv_poll per descriptor up to
 *                    16, then an epoll set of its own, which libuv
 *                    watches as one descriptor
 *   poller-uv.c      the poller elsewhere: a uv_poll per descriptor
 *
 * Every call returns a negative errno on failure (-EAGAIN when it would
 * block); JavaScript turns those into errors. The Makefile builds the parts
 * with the C compiler and Node's own headers (no node-gyp), and so does
 * install.mjs where no prebuilt addon fits.
 */
#ifndef WASMLOOP_SELECTOR_H
#define WASMLOOP_SELECTOR_H

#define _GNU_SOURCE
#define NAPI_VERSION 8
#include <node_api.h>
#include <uv.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Watch directions, as JavaScript passes them. */
#define READABLE 1
#define WRITABLE 2
/* A direction nobody watches. */
#define NO_TOKEN 0xffffffffu

/* --------------------------------------------------- N-API (selector.c) */

/* Throws and returns NULL from the calling N-API function if `call` fails. */
#define CHECK(call)                                                          \
  do {                                                                       \
    if ((call) != napi_ok) {                                                 \
      napi_throw_error(env, NULL, "wasmloop selector: N-API call failed: " #call); \
      return NULL;                                                           \
    }                                                                        \
  } while (0)

static inline napi_value int_value(napi_env env, int64_t v) {
  napi_value out;
  napi_create_int64(env, v, &out);
  return out;
}

/* Each returns 0, or -1 with a JavaScript exception pending. */
int get_call(napi_env env, napi_callback_info info, size_t n, size_t *argc, napi_value *argv, napi_value *self);
int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv);
int get_i32(napi_env env, napi_value v, int32_t *out);

/* -------------------------------------------------------------- the poller */

/* The descriptors a poller watches, and how: its own epoll set
 * (poller-epoll.c) or a uv_poll per descriptor (poller-uv.c). */
struct watches;

/* One Poller object's state. selector.c owns the batch of tokens, the
 * callback and the check handle that hands the batch over; the poller files
 * own `watches`. */
typedef struct poller {
  napi_env env;
  uv_loop_t *loop;
  uv_check_t check;        /* once per libuv iteration: hands the batch to JavaScript */
  napi_ref callback;
  napi_ref buffer_ref;     /* Uint32Array shared with JavaScript */
  uint32_t *buffer;        /* its elements: the batch of ready tokens */
  uint32_t capacity;
  uint32_t count;
  int closed;
  napi_async_context context;
  struct watches *watches;
} poller;

/* selector.c: adds a ready token to the batch (dropped when the batch is full). */
void queue_token(poller *p, uint32_t token);

/* poller-epoll.c or poller-uv.c, whichever the system builds. */
int poller_init(poller *p); /* 0 | -errno; on failure nothing is left to free */
int poller_watch(poller *p, int fd, int direction, uint32_t token, int edge); /* 0 | -errno */
void poller_unwatch(poller *p, int fd, int direction);
/* Stops every watch and the check handle; frees the poller once libuv is done with its handles. */
void poller_close(poller *p);

/* ------------------------------------------------------------- sockets.c */

/* Adds the system calls (listen, accept, read, write, ...) and the errno
 * codes JavaScript compares with to `exports`; NULL with an exception
 * pending if that fails. */
napi_value define_socket_calls(napi_env env, napi_value exports);

/* ----------------------------------------------------------- inherited.c */

/* Adds listenerFault and adoptListener (listening sockets handed over by
 * another process) to `exports`; NULL with an exception pending if that fails. */
napi_value define_inherited_calls(napi_env env, napi_value exports);

#endif
