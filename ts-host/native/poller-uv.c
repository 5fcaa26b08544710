/*
 * The selector's poller where there is no epoll: a uv_poll watch per
 * descriptor, found in a table indexed by descriptor. Its callbacks queue the
 * ready watches' tokens (selector.c hands the batch to JavaScript after
 * libuv's poll phase). Watches are level-triggered whatever the program
 * asked for, which every watcher handles. Linux builds poller-epoll.c
 * instead; the Makefile compiles this file with __linux__ undefined too, so
 * it keeps building.
 */
#include "selector.h"

#ifndef __linux__

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct watch {
  uv_poll_t handle;
  poller *owner;
  int fd;
  int events;
  uint32_t tokens[3]; /* by direction: [READABLE], [WRITABLE] */
} watch;

struct watches {
  watch **by_fd; /* by descriptor, NULL where none */
  int by_fd_len;
};

static watch *find_watch(poller *p, int fd) {
  return fd >= 0 && fd < p->watches->by_fd_len ? p->watches->by_fd[fd] : NULL;
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
    p->watches->by_fd[w->fd] = NULL;
    uv_close((uv_handle_t *)&w->handle, free_watch);
    return 0;
  }
  return uv_poll_start(&w->handle, uv_events, on_poll);
}

int poller_watch(poller *p, int fd, int direction, uint32_t token, int edge) {
  (void)edge; /* level-triggered here: every watcher handles that */
  if (fd < 0) return -EBADF;
  watch *w = find_watch(p, fd);
  if (!w) {
    if (fd >= p->watches->by_fd_len) {
      int len = p->watches->by_fd_len == 0 ? 256 : p->watches->by_fd_len;
      while (len <= fd) len *= 2;
      watch **table = realloc(p->watches->by_fd, (size_t)len * sizeof *table);
      if (!table) return -ENOMEM;
      memset(table + p->watches->by_fd_len, 0, (size_t)(len - p->watches->by_fd_len) * sizeof *table);
      p->watches->by_fd = table;
      p->watches->by_fd_len = len;
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
    p->watches->by_fd[fd] = w;
  }
  w->tokens[direction] = token;
  return apply(p, w);
}

void poller_unwatch(poller *p, int fd, int direction) {
  watch *w = find_watch(p, fd);
  if (!w) return;
  w->tokens[direction] = NO_TOKEN;
  apply(p, w);
}

int poller_init(poller *p) {
  p->watches = calloc(1, sizeof *p->watches);
  return p->watches ? 0 : -ENOMEM;
}

static void free_poller(uv_handle_t *handle) {
  poller *p = (poller *)handle->data;
  free(p->watches->by_fd);
  free(p->watches);
  free(p);
}

void poller_close(poller *p) {
  for (int fd = 0; fd < p->watches->by_fd_len; fd++) {
    watch *w = p->watches->by_fd[fd];
    if (!w) continue;
    p->watches->by_fd[fd] = NULL;
    uv_close((uv_handle_t *)&w->handle, free_watch);
  }
  uv_check_stop(&p->check);
  uv_close((uv_handle_t *)&p->check, free_poller);
}

#endif
