/*
 * The perf harness's reference bridge: the least work any bridge can do, in C, with blocking fds
 * and no event loop. It bounds what pipebridge (or anything else) can reach on this machine in the
 * bridge scenarios; the harness compiles it with `cc -O2` on first use.
 *
 *   cbridge copy|splice|splice-epoll SOURCE DESTINATION
 *   SOURCE, DESTINATION: fifo:PATH | tcp:HOST:PORT | unix:PATH   (sockets are connected to)
 *
 * copy: read()/write() through one 1 MiB buffer. splice: splice() 1 MiB at a time, straight across
 * when an end is a pipe, through a 1 MiB intermediate pipe between two sockets. FIFOs are grown to
 * 1 MiB (F_SETPIPE_SZ), as pipebridge grows them. splice-epoll (an end must be a pipe): the splice
 * loop on non-blocking fds with an epoll wait after EAGAIN, the way any reactor-based bridge waits. Exit status 0 after the source's EOF, 1 on error.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define CHUNK (1 << 20)

static int die(const char *what, const char *name) {
  fprintf(stderr, "cbridge: %s %s: %s\n", what, name, strerror(errno));
  exit(1);
}

static int open_end(const char *address, int writing, int *is_pipe) {
  *is_pipe = 0;
  if (strncmp(address, "fifo:", 5) == 0) {
    int fd = open(address + 5, (writing ? O_WRONLY : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) die("open", address);
    fcntl(fd, F_SETPIPE_SZ, CHUNK);
    *is_pipe = 1;
    return fd;
  }
  if (strncmp(address, "unix:", 5) == 0) {
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    strncpy(sa.sun_path, address + 5, sizeof sa.sun_path - 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect", address);
    return fd;
  }
  if (strncmp(address, "tcp:", 4) == 0) {
    char host[256];
    const char *colon = strrchr(address + 4, ':');
    if (!colon || colon - (address + 4) >= (long)sizeof host) { errno = EINVAL; die("parse", address); }
    memcpy(host, address + 4, colon - (address + 4));
    host[colon - (address + 4)] = 0;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((unsigned short)atoi(colon + 1))};
    if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) { errno = EINVAL; die("parse", address); }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) die("connect", address);
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
  }
  errno = EINVAL;
  return die("address", address);
}

static void copy(int in, int out, const char *src, const char *dst) {
  char *buffer = malloc(CHUNK);
  for (;;) {
    ssize_t n = read(in, buffer, CHUNK);
    if (n < 0) { if (errno == EINTR) continue; die("read", src); }
    if (n == 0) return;
    for (ssize_t done = 0; done < n;) {
      ssize_t w = write(out, buffer + done, n - done);
      if (w < 0) { if (errno == EINTR) continue; die("write", dst); }
      done += w;
    }
  }
}

static void splice_direct(int in, int out, const char *src) {
  for (;;) {
    ssize_t n = splice(in, NULL, out, NULL, CHUNK, SPLICE_F_MOVE);
    if (n < 0) { if (errno == EINTR) continue; die("splice", src); }
    if (n == 0) return;
  }
}

/* splice-epoll: the same splice loop on non-blocking fds, waiting in epoll (edge-triggered, both
 * ends in one set) after EAGAIN, as a reactor-based bridge must: it shows what readiness waits cost. */
static void splice_epoll(int in, int out, const char *src) {
  int ep = epoll_create1(EPOLL_CLOEXEC);
  struct epoll_event ev = {.events = EPOLLIN | EPOLLET, .data.fd = in};
  fcntl(in, F_SETFL, fcntl(in, F_GETFL) | O_NONBLOCK);
  fcntl(out, F_SETFL, fcntl(out, F_GETFL) | O_NONBLOCK);
  if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, in, &ev) < 0) die("epoll_ctl", src);
  ev.events = EPOLLOUT | EPOLLET;
  ev.data.fd = out;
  if (epoll_ctl(ep, EPOLL_CTL_ADD, out, &ev) < 0) die("epoll_ctl", src);
  struct epoll_event events[2];
  for (;;) {
    ssize_t n = splice(in, NULL, out, NULL, CHUNK, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) continue;
    if (n == 0) return;
    if (errno == EAGAIN) {
      if (epoll_wait(ep, events, 2, -1) < 0 && errno != EINTR) die("epoll_wait", src);
      continue;
    }
    if (errno != EINTR) die("splice", src);
  }
}

static void splice_through_pipe(int in, int out, const char *src, const char *dst) {
  int p[2];
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe2", "intermediate");
  fcntl(p[1], F_SETPIPE_SZ, CHUNK);
  for (;;) {
    ssize_t n = splice(in, NULL, p[1], NULL, CHUNK, SPLICE_F_MOVE);
    if (n < 0) { if (errno == EINTR) continue; die("splice", src); }
    if (n == 0) return;
    while (n > 0) {
      ssize_t w = splice(p[0], NULL, out, NULL, n, SPLICE_F_MOVE);
      if (w < 0) { if (errno == EINTR) continue; die("splice", dst); }
      n -= w;
    }
  }
}

int main(int argc, char **argv) {
  if (argc != 4 || (strcmp(argv[1], "copy") && strcmp(argv[1], "splice") && strcmp(argv[1], "splice-epoll"))) {
    fprintf(stderr, "usage: cbridge copy|splice|splice-epoll SOURCE DESTINATION\n");
    return 2;
  }
  int in_pipe, out_pipe;
  int in = open_end(argv[2], 0, &in_pipe);
  int out = open_end(argv[3], 1, &out_pipe);
  if (strcmp(argv[1], "copy") == 0) copy(in, out, argv[2], argv[3]);
  else if (strcmp(argv[1], "splice-epoll") == 0) splice_epoll(in, out, argv[2]);
  else if (in_pipe || out_pipe) splice_direct(in, out, argv[2]);
  else splice_through_pipe(in, out, argv[2], argv[3]);
  return 0;
}
