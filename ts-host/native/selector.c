/*
 * wasmloop's native selector for Node.js, the addon the 'selector' backend
 * loads: readiness of file descriptors, and the non-blocking system calls
 * that go with it (sockets.c). This file is the addon itself: the N-API
 * argument helpers, the Poller class and the module's exports; selector.h
 * lists the other parts.
 *
 * Readiness reaches JavaScript in batches: the poller (poller-epoll.c on
 * Linux, poller-uv.c elsewhere) queues the tokens of ready watches during
 * libuv's poll phase, and one uv_check callback per libuv iteration hands
 * them over in a Uint32Array shared with JavaScript, so a burst of ready
 * sockets costs one call into JavaScript. The program reads and writes
 * afterwards, in the loop's callbacks.
 */
#include "selector.h"

#include <errno.h>
#include <stdlib.h>

#ifndef NODE_GYP_MODULE_NAME
#define NODE_GYP_MODULE_NAME wasmloop_selector
#endif

/* --------------------------------------------------------------- helpers */

/* The call's arguments, at least `n` of the `*argc` that `argv` holds
 * (`*argc` becomes how many were passed), and its receiver if `self`. */
int get_call(napi_env env, napi_callback_info info, size_t n, size_t *argc, napi_value *argv, napi_value *self) {
  if (napi_get_cb_info(env, info, argc, argv, self, NULL) != napi_ok) return -1;
  if (*argc < n) {
    napi_throw_type_error(env, NULL, "wasmloop selector: missing arguments");
    return -1;
  }
  return 0;
}

int get_args(napi_env env, napi_callback_info info, size_t n, napi_value *argv) {
  size_t argc = n;
  return get_call(env, info, n, &argc, argv, NULL);
}

int get_i32(napi_env env, napi_value v, int32_t *out) {
  if (napi_get_value_int32(env, v, out) != napi_ok) {
    napi_throw_type_error(env, NULL, "wasmloop selector: expected a number");
    return -1;
  }
  return 0;
}

/* -------------------------------------------------------------- the poller */

void queue_token(poller *p, uint32_t token) {
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
 * the watcher handles edge-triggered readiness (poller-epoll.c); a hint. */
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
  if (!define_socket_calls(env, exports)) return NULL;
  if (!define_inherited_calls(env, exports)) return NULL;
  napi_property_descriptor methods[] = {
      {"watch", NULL, js_watch, NULL, NULL, NULL, napi_default, NULL},
      {"unwatch", NULL, js_unwatch, NULL, NULL, NULL, napi_default, NULL},
      {"close", NULL, js_poller_close, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_value poller_class;
  CHECK(napi_define_class(env, "Poller", NAPI_AUTO_LENGTH, js_poller_new, NULL, 3, methods, &poller_class));
  CHECK(napi_set_named_property(env, exports, "Poller", poller_class));
  return exports;
}

NAPI_MODULE(NODE_GYP_MODULE_NAME, init)
