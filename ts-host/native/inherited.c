/*
 * Listening sockets handed over by another process: a process manager
 * (systemd's socket activation, a supervisor, `wasmloop --workers`) binds
 * a socket and passes it on as an inherited descriptor. Here it is checked
 * (a listening TCP or Unix stream socket, or why not) and adopted: made
 * non-blocking and close-on-exec, as the addon's own listeners are; its
 * address and backlog stay as its binder set them.
 */
#include "selector.h"

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>

/* Why `fd` cannot be adopted as a listener, or 0: -EBADF (not open),
 * -ENOTSOCK (not a socket), -EAFNOSUPPORT (not TCP or Unix), -EPROTOTYPE
 * (not a stream socket), -EINVAL (not listening). Changes nothing. */
static int listener_fault(int fd) {
  struct stat st;
  if (fstat(fd, &st) < 0) return -errno;
  if (!S_ISSOCK(st.st_mode)) return -ENOTSOCK;
  struct sockaddr_storage sa;
  socklen_t len = sizeof sa;
  if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0) return -errno;
  if (sa.ss_family != AF_INET && sa.ss_family != AF_INET6 && sa.ss_family != AF_UNIX) return -EAFNOSUPPORT;
  int value = 0;
  socklen_t size = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &value, &size) < 0) return -errno;
  if (value != SOCK_STREAM) return -EPROTOTYPE;
#ifdef SO_ACCEPTCONN
  size = sizeof value;
  if (getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &value, &size) < 0) return -errno;
  if (!value) return -EINVAL;
#endif
  return 0;
}

/* listenerFault(fd) -> 0 | -errno: what adoptListener would say, changing nothing. */
static napi_value js_listener_fault(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  return int_value(env, listener_fault(fd));
}

/* adoptListener(fd) -> fd | -errno (listenerFault's, or fcntl's). */
static napi_value js_adopt_listener(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  if (get_args(env, info, 1, argv)) return NULL;
  int32_t fd;
  if (get_i32(env, argv[0], &fd)) return NULL;
  int fault = listener_fault(fd);
  if (fault < 0) return int_value(env, fault);
  int status = fcntl(fd, F_GETFL);
  if (status < 0 || fcntl(fd, F_SETFL, status | O_NONBLOCK) < 0) return int_value(env, -errno);
  int flags = fcntl(fd, F_GETFD);
  if (flags < 0 || fcntl(fd, F_SETFD, flags | FD_CLOEXEC) < 0) return int_value(env, -errno);
  return int_value(env, fd);
}

napi_value define_inherited_calls(napi_env env, napi_value exports) {
  napi_property_descriptor functions[] = {
      {"listenerFault", NULL, js_listener_fault, NULL, NULL, NULL, napi_default, NULL},
      {"adoptListener", NULL, js_adopt_listener, NULL, NULL, NULL, napi_default, NULL},
  };
  CHECK(napi_define_properties(env, exports, sizeof functions / sizeof functions[0], functions));
  return exports;
}
