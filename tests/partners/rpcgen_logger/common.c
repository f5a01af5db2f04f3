/*
 * What the test partner adds to a student's rpcgen logger server (build.sh), beside
 * rpcgen's own main and stub:
 *
 * - svc_run, defined here, replaces libtirpc's: the same loop (select on svc_fdset, then
 *   svc_getreqset), which also notes each accepted TCP connection as a stdout line
 *   `connection N port P to ADDR` (P the sender's port, ADDR the address it called), so a test can count how often a sender reconnects. rpcgen's
 *   main calls svc_run; a definition in the program takes precedence over the library's.
 * - SIGTERM and SIGINT unregister the program from rpcbind (what rpcgen's main does at
 *   start, pmap_unset) and exit 0, so a stopped partner leaves no stale registration.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/select.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <rpc/pmap_clnt.h>
#include "logger.h"

/* Per descriptor: the peer port of the connection seen on it (0: none). */
static unsigned short seen_port[FD_SETSIZE];
static int connections;

/* Notes every connected TCP socket of svc_fdset not seen before. */
static void
note_connections(void)
{
	int fd;

	for (fd = 0; fd < FD_SETSIZE; fd++) {
		struct sockaddr_in a;
		socklen_t len = sizeof a;
		unsigned short port = 0;

		if (FD_ISSET(fd, &svc_fdset) &&
		    getpeername(fd, (struct sockaddr *) &a, &len) == 0 &&
		    a.sin_family == AF_INET)
			port = ntohs(a.sin_port);
		if (port != 0 && port != seen_port[fd]) {
			struct sockaddr_in local;
			socklen_t llen = sizeof local;
			char to[INET_ADDRSTRLEN] = "?";

			if (getsockname(fd, (struct sockaddr *) &local, &llen) == 0)
				inet_ntop(AF_INET, &local.sin_addr, to, sizeof to);
			connections++;
			printf("connection %d port %u to %s\n", connections, port, to);
			fflush(stdout);
		}
		seen_port[fd] = port;
	}
}

void
svc_run(void)
{
	for (;;) {
		fd_set readfds = svc_fdset;

		if (select(FD_SETSIZE, &readfds, NULL, NULL, NULL) < 0) {
			if (errno == EINTR)
				continue;
			perror("select");
			return;
		}
		svc_getreqset(&readfds);
		note_connections();
	}
}

static void
on_stop(int sig)
{
	(void) sig;
	pmap_unset(LOGGER_PROG, LOGGER_VERS);
	fflush(stdout);
	_exit(0);
}

/* Runs before rpcgen's main. */
__attribute__((constructor)) static void
install_stop_handlers(void)
{
	signal(SIGTERM, on_stop);
	signal(SIGINT, on_stop);
}
