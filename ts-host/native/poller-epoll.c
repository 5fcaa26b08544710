/*
 * The selector's poller on Linux: the descriptors JavaScript watches go into
 * an epoll set of the poller's own, and libuv watches that one descriptor;
 * when the set is readable, one epoll_wait collects the ready watches as
 * tokens (selector.c hands the batch to JavaScript after libuv's poll phase).
 * Two reasons for a set of its own rather than a uv_poll per descriptor:
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
 * Both reasons are about many descriptors. A set of its own costs one more
 * system call per wakeup (libuv's epoll_pwait reports the set, then
 * epoll_wait on the set says what in it is ready): at one connection, a
 * round trip of an echo server made 2 polls where uvloop makes 1. So while
 * the poller watches at most DIRECT_MAX descriptors, each is a uv_poll of
 * its own on libuv's epoll (level-triggered, which every watcher handles,
 * as on systems without epoll); the watch past DIRECT_MAX moves them all
 * into the set, where they stay until none is watched.
 *
 * Other systems build poller-uv.c instead.
 */
#include "selector.h"

#ifdef __linux__

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>

/* Descriptors watched through libuv directly, at most (see above). */
#define DIRECT_MAX 16

/* A descriptor watched through libuv directly: a uv_poll of its own. */
typedef struct direct {
  uv_poll_t handle;
  poller *owner;
  int fd;
} direct;

/* One descriptor's watch, in a table indexed by descriptor. */
typedef struct watch {
  uint32_t tokens[3]; /* by direction: [READABLE], [WRITABLE]; NO_TOKEN when not watched */
  uint8_t edge[3];    /* by direction: the watcher handles edge-triggered readiness */
  uint8_t hung_up;    /* the peer hung up or the socket failed: level-triggered from then on */
  uint32_t events;    /* what the epoll set holds for it; 0 when it is not in the set */
  direct *direct;     /* its uv_poll while watched directly, else NULL */
} watch;

struct watches {
  uv_poll_t set_handle; /* libuv's watch on the epoll set */
  int epfd;
  int watching;         /* descriptors in the set */
  int directs;          /* descriptors watched directly */
  int nested;           /* watches go into the set (past DIRECT_MAX, until none is left) */
  watch *table;         /* by descriptor, so a watch costs the same with 10,000 as with 1 */
  int table_len;
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
  int n = epoll_wait(p->watches->epfd, ready, max, 0);
  for (int i = 0; i < n; i++) {
    int fd = (int)ready[i].data.u32;
    if (fd >= p->watches->table_len || p->watches->table[fd].events == 0) continue;
    watch *w = &p->watches->table[fd];
    uint32_t ev = ready[i].events;
    if ((ev & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) && !w->hung_up) {
      /* A watcher that stops at a short read may not have read the end of
       * the stream yet, and no new edge will come for it: from now on the
       * descriptor is reported for as long as it stays readable. */
      w->hung_up = 1;
      if (w->events & EPOLLET) {
        struct epoll_event e = {.events = w->events & ~EPOLLET, .data = {.u32 = (uint32_t)fd}};
        if (epoll_ctl(p->watches->epfd, EPOLL_CTL_MOD, fd, &e) == 0) w->events = e.events;
      }
    }
    /* An error or hang-up wakes both directions: the program's read or
     * write reports it (as libuv's uv_poll does). */
    if (ev & (EPOLLERR | EPOLLHUP)) ev |= EPOLLIN | EPOLLOUT;
    if (ev & (EPOLLIN | EPOLLRDHUP)) queue_token(p, w->tokens[READABLE]);
    if (ev & EPOLLOUT) queue_token(p, w->tokens[WRITABLE]);
  }
}

/* A direct watch's descriptor is ready (libuv's poll phase): its tokens. */
static void on_direct_ready(uv_poll_t *handle, int status, int events) {
  direct *d = (direct *)handle->data;
  poller *p = d->owner;
  watch *w = &p->watches->table[d->fd];
  /* An error: wake both directions; the program's read or write reports it. */
  if (status < 0) events = UV_READABLE | UV_WRITABLE;
  if (events & (UV_READABLE | UV_DISCONNECT)) queue_token(p, w->tokens[READABLE]);
  if (events & (UV_WRITABLE | UV_DISCONNECT)) queue_token(p, w->tokens[WRITABLE]);
}

static void free_direct(uv_handle_t *handle) {
  free(handle->data);
}

/* Stops watching `fd` directly. Closing the handle takes the descriptor out
 * of libuv's epoll at once, so the program may close it right after. */
static void drop_direct(poller *p, watch *w) {
  uv_close((uv_handle_t *)&w->direct->handle, free_direct);
  w->direct = NULL;
  p->watches->directs--;
}

/* Watches `fd` directly for what its tokens ask: 0 or -errno. A change
 * makes a new handle: the descriptor may have been closed while watched
 * and its number reused, and libuv's epoll would no longer hold it (a
 * changed uv_poll modifies its registration, which then fails). */
static int apply_direct(poller *p, int fd, watch *w, int uv_events) {
  if (w->direct) drop_direct(p, w);
  direct *d = malloc(sizeof *d);
  if (!d) return -ENOMEM;
  /* uv_poll_init makes the descriptor non-blocking; a watch leaves it as
   * the program had it (the loop's own sockets are non-blocking already). */
  int flags = fcntl(fd, F_GETFL);
  int rc = uv_poll_init(p->loop, &d->handle, fd);
  if (rc < 0) {
    free(d);
    return rc;
  }
  if (flags >= 0 && !(flags & O_NONBLOCK)) fcntl(fd, F_SETFL, flags);
  d->handle.data = d;
  d->owner = p;
  d->fd = fd;
  rc = uv_poll_start(&d->handle, uv_events, on_direct_ready);
  if (rc < 0) {
    uv_close((uv_handle_t *)&d->handle, free_direct);
    return rc;
  }
  w->direct = d;
  p->watches->directs++;
  return 0;
}

static int apply(poller *p, int fd, int resync);

/* The watch past DIRECT_MAX: every direct watch moves into the epoll set
 * (one that fails there, a descriptor closed while watched, is dropped). */
static void nest(poller *p) {
  p->watches->nested = 1;
  for (int fd = 0; fd < p->watches->table_len && p->watches->directs > 0; fd++) {
    watch *w = &p->watches->table[fd];
    if (!w->direct) continue;
    drop_direct(p, w);
    apply(p, fd, 1);
  }
}

/* Brings the epoll set in line with `fd`'s watch: 0 or -errno. `resync`:
 * tell the kernel again even if nothing changed here (a watch registered
 * anew: its descriptor may have been closed and its number reused, and the
 * kernel drops a closed descriptor from the set). */
static int apply(poller *p, int fd, int resync) {
  watch *w = &p->watches->table[fd];
  struct watches *s = p->watches;
  if (!s->nested) {
    int uv_events = 0;
    if (w->tokens[READABLE] != NO_TOKEN) uv_events |= UV_READABLE | UV_DISCONNECT;
    if (w->tokens[WRITABLE] != NO_TOKEN) uv_events |= UV_WRITABLE;
    if (uv_events == 0) {
      if (w->direct) drop_direct(p, w);
      return 0;
    }
    if (w->direct || s->directs < DIRECT_MAX) return apply_direct(p, fd, w, uv_events);
    nest(p);
  }
  if (w->direct) drop_direct(p, w);
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
    epoll_ctl(p->watches->epfd, EPOLL_CTL_DEL, fd, &e);
    w->events = 0;
    w->hung_up = 0; /* the number may next belong to another socket */
    /* Watches keep the process alive, as uv_poll watches do; none, none.
     * With none left in the set, watches go direct again. */
    if (--p->watches->watching == 0) {
      uv_poll_stop(&p->watches->set_handle);
      p->watches->nested = 0;
    }
    return 0;
  }
  int adding = w->events == 0;
  if (adding && p->watches->watching == 0) {
    int rc = uv_poll_start(&p->watches->set_handle, UV_READABLE, on_set_ready);
    if (rc < 0) return rc;
  }
  /* ADD and MOD both report at once what is ready now, edge-triggered too. */
  int failed = epoll_ctl(p->watches->epfd, adding ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &e) < 0;
  /* ENOENT: the descriptor was closed while watched and the number reused
   * (the kernel dropped it from the set): add it again. */
  if (failed && !adding && errno == ENOENT) failed = epoll_ctl(p->watches->epfd, EPOLL_CTL_ADD, fd, &e) < 0;
  if (failed) {
    int rc = -errno;
    if (adding && p->watches->watching == 0) uv_poll_stop(&p->watches->set_handle);
    return rc;
  }
  if (adding) p->watches->watching++;
  w->events = want;
  return 0;
}

/* The table entry for `fd`, grown as needed; NULL when out of memory. */
static watch *entry(poller *p, int fd) {
  if (fd < p->watches->table_len) return &p->watches->table[fd];
  int len = p->watches->table_len == 0 ? 256 : p->watches->table_len;
  while (len <= fd) len *= 2;
  watch *table = realloc(p->watches->table, (size_t)len * sizeof *table);
  if (!table) return NULL;
  for (int i = p->watches->table_len; i < len; i++) {
    table[i] = (watch){
        .tokens = {NO_TOKEN, NO_TOKEN, NO_TOKEN}, .edge = {0, 0, 0}, .hung_up = 0, .events = 0, .direct = NULL};
  }
  p->watches->table = table;
  p->watches->table_len = len;
  return &table[fd];
}

int poller_watch(poller *p, int fd, int direction, uint32_t token, int edge) {
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

void poller_unwatch(poller *p, int fd, int direction) {
  if (fd < 0 || fd >= p->watches->table_len) return;
  p->watches->table[fd].tokens[direction] = NO_TOKEN;
  apply(p, fd, 0);
}

int poller_init(poller *p) {
  struct watches *s = calloc(1, sizeof *s);
  if (!s) return -ENOMEM;
  s->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (s->epfd < 0) {
    int err = errno;
    free(s);
    return -err;
  }
  int rc = uv_poll_init(p->loop, &s->set_handle, s->epfd);
  if (rc < 0) {
    close(s->epfd);
    free(s);
    return rc;
  }
  s->set_handle.data = p;
  p->watches = s;
  return 0;
}

static void free_poller(uv_handle_t *handle) {
  poller *p = (poller *)handle->data;
  /* Only now, with libuv done with its handle: closed earlier, the number
   * could go to a new poller's set while libuv still held this handle, and
   * closing the handle would take that set out of libuv's epoll. */
  close(p->watches->epfd);
  free(p->watches->table);
  free(p->watches);
  free(p);
}

static void close_set(uv_handle_t *handle) {
  /* The check handle is closed: the set's handle goes last and frees the poller. */
  poller *p = (poller *)handle->data;
  uv_close((uv_handle_t *)&p->watches->set_handle, free_poller);
}

void poller_close(poller *p) {
  for (int fd = 0; fd < p->watches->table_len && p->watches->directs > 0; fd++) {
    watch *w = &p->watches->table[fd];
    if (w->direct) drop_direct(p, w);
  }
  uv_poll_stop(&p->watches->set_handle);
  uv_check_stop(&p->check);
  uv_close((uv_handle_t *)&p->check, close_set);
}

#endif
