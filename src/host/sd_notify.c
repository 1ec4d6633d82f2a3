/*
 * systemd readiness (sd_notify protocol), without libsystemd.
 *
 * Why: a unit with Type=notify starts its dependants only once the node
 * says READY=1, i.e. once it listens and serves, not when the process
 * exists; and STOPPING=1 tells systemd the graceful shutdown began. The
 * protocol is one datagram to the AF_UNIX socket named by $NOTIFY_SOCKET
 * (a leading '@' means the abstract namespace), so libsystemd is not worth
 * a dependency. Without $NOTIFY_SOCKET nothing is sent. Failures are
 * returned, never fatal: a node must not stop serving because its
 * supervisor went away.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "host/host_int.h"
#include "moonpool/status.h"

int mp__sd_notify(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (!path || !*path) return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof sa);
    sa.sun_family = AF_UNIX;
    size_t n = strlen(path);
    if ((path[0] != '/' && path[0] != '@') || n >= sizeof sa.sun_path) return MP_EADDR;
    memcpy(sa.sun_path, path, n);
    if (path[0] == '@') sa.sun_path[0] = '\0';
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return MP_EIO;
    ssize_t w = sendto(fd, state, strlen(state), MSG_NOSIGNAL, (struct sockaddr *)&sa,
                       (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n));
    close(fd);
    return w == (ssize_t)strlen(state) ? 1 : MP_EIO;
}
